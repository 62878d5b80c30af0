/*
 * selftest.h - test-only declarations of libnexvitad symbols that are exported but
 * deliberately not in the public nexvitad.h. Include after <nexvitad.h>. Not installed.
 */
#ifndef NEXVITAD_SELFTEST_H
#define NEXVITAD_SELFTEST_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Panics deliberately inside the library and returns what the panic became: in a correct
 * build always NEXVITAD_INTERNAL, with nexvitad_last_error() containing "deliberate panic".
 * A build whose panics abort the process (panic = "abort") would break every promise of
 * nexvitad.h; the library refuses to compile that way, and this proves the shipped binary.
 */
nexvitad_status nexvitad_selftest_panic(void);

#ifdef __cplusplus
}
#endif

#endif /* NEXVITAD_SELFTEST_H */
