package nexvitad

// The library is found with pkg-config (nexvitad.pc in PREFIX/lib/pkgconfig). At run
// time libnexvitad.so must be on the loader's path: link with
// CGO_LDFLAGS="-Wl,-rpath,$(pkg-config --variable=libdir nexvitad)" or set
// LD_LIBRARY_PATH. See README.md.

/*
#cgo pkg-config: nexvitad
#include <nexvitad.h>
*/
import "C"

// ABIVersion is the C ABI version this package was written against; Open refuses a
// library that reports another one.
const ABIVersion = C.NEXVITAD_ABI_VERSION

// Version returns the loaded library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.nexvitad_version()) }

// LibraryABIVersion returns the C ABI version of the loaded library.
func LibraryABIVersion() int { return int(C.nexvitad_abi_version()) }

// LibraryABIRevision is the loaded library's C ABI revision (nexvitad_abi_revision): 2 and up
// score with a bank alone (Bank.Score) and follow the options' "use the default" rule.
func LibraryABIRevision() int { return int(C.nexvitad_abi_revision()) }
