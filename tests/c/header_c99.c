/* The header compiles as strict C99: gcc -std=c99 -Wall -Wextra -Werror -pedantic. */
#include "abi_check.h"

int main(void) {
    return abi_runtime_check() ? 0 : 1;
}
