// The header compiles as C++17: g++ -std=c++17 -Wall -Wextra -Werror -pedantic.
#include "abi_check.h"

#include <type_traits>

// In C++ the status is a real enum with a fixed 32-bit underlying type.
static_assert(std::is_same<std::underlying_type<nexvitad_status>::type, int32_t>::value, "status is int32_t");

int main() {
    return abi_runtime_check() ? 0 : 1;
}
