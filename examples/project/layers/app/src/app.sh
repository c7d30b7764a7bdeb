#!/bin/sh
greet strata
echo "licenses: $(ls /usr/share/doc/vendor | tr '\n' ' ')"
