package nexvitad

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import (
	"context"
	"runtime/cgo"
)

// buildState is what a bank build's progress callback reaches through its cgo.Handle:
// the C library only ever holds the handle's integer value, never a Go pointer.
type buildState struct {
	ctx      context.Context
	progress func(Progress)
	// panicked holds a panic of the Progress callback, recovered so it does not unwind
	// through the library's frames and re-raised once the C call has returned.
	panicked any
}

// nexvitadGoProgress is the progress callback of nexvitad_bank_build (reached through
// the C trampoline in shim.c). Returning non-zero cancels the build.
//
//export nexvitadGoProgress
func nexvitadGoProgress(user C.uintptr_t, stage C.int, done, total C.size_t) (cancel C.int) {
	st := cgo.Handle(user).Value().(*buildState)
	defer func() {
		if r := recover(); r != nil {
			st.panicked = r
			cancel = 1
		}
	}()
	if st.ctx.Err() != nil {
		return 1
	}
	if st.progress != nil {
		st.progress(Progress{Stage: Stage(stage), Done: int(done), Total: int(total)})
		if st.ctx.Err() != nil {
			return 1
		}
	}
	return 0
}
