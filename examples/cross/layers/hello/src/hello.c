#include <stdio.h>
#include <sys/utsname.h>

int main(void) {
    struct utsname u;
    if (uname(&u) != 0) {
        return 1;
    }
    printf("hello from %s\n", u.machine);
    return 0;
}
