#!/bin/sh
echo "hello from strata: $(cat /etc/greeting)"
