package nexvitad

/*
#include <stdlib.h>
#include <nexvitad.h>
*/
import "C"

import (
	"errors"
	"unsafe"
)

// Status is a nexvitad_status code: the class of a failure. The details are in
// Error.Message.
type Status int32

// The status codes of the C API (nexvitad.h).
const (
	StatusOK              Status = C.NEXVITAD_OK
	StatusInvalidArgument Status = C.NEXVITAD_INVALID_ARGUMENT
	StatusIO              Status = C.NEXVITAD_IO
	StatusFormat          Status = C.NEXVITAD_FORMAT
	StatusMismatch        Status = C.NEXVITAD_MISMATCH
	StatusRuntime         Status = C.NEXVITAD_RUNTIME
	StatusUnsupported     Status = C.NEXVITAD_UNSUPPORTED
	StatusLimitExceeded   Status = C.NEXVITAD_LIMIT_EXCEEDED
	StatusCancelled       Status = C.NEXVITAD_CANCELLED
	StatusInternal        Status = C.NEXVITAD_INTERNAL
)

// String returns the C name of the status, e.g. "NEXVITAD_MISMATCH".
func (s Status) String() string {
	return C.GoString(C.nexvitad_status_name(C.int(s)))
}

// Sentinel errors, one per failure status, for errors.Is. Every error this package
// returns for a failed call is an *Error, which matches the sentinel of its Status.
var (
	ErrInvalidArgument = errors.New("nexvitad: invalid argument")
	ErrIO              = errors.New("nexvitad: i/o error")
	ErrFormat          = errors.New("nexvitad: corrupt or wrong-kind file")
	ErrMismatch        = errors.New("nexvitad: bank and model do not belong together")
	ErrRuntime         = errors.New("nexvitad: ONNX Runtime failure")
	ErrUnsupported     = errors.New("nexvitad: unsupported")
	ErrLimitExceeded   = errors.New("nexvitad: limit exceeded")
	ErrCancelled       = errors.New("nexvitad: cancelled")
	ErrInternal        = errors.New("nexvitad: internal error")

	// ErrClosed is wrapped by the error of any call on a closed Model or Bank (whose
	// Status is StatusInvalidArgument, as the C API reports a freed handle).
	ErrClosed = errors.New("nexvitad: use of closed handle")
)

var sentinels = map[Status]error{
	StatusInvalidArgument: ErrInvalidArgument,
	StatusIO:              ErrIO,
	StatusFormat:          ErrFormat,
	StatusMismatch:        ErrMismatch,
	StatusRuntime:         ErrRuntime,
	StatusUnsupported:     ErrUnsupported,
	StatusLimitExceeded:   ErrLimitExceeded,
	StatusCancelled:       ErrCancelled,
	StatusInternal:        ErrInternal,
}

// Error is a failed nexvitad call: the status class and the library's message, which
// names the offending argument, file or limit.
type Error struct {
	Status  Status
	Message string
	// cause is what led to the failure on the Go side: ctx.Err() for a cancelled
	// build, ErrClosed for a closed handle. Reached through Unwrap.
	cause error
}

func (e *Error) Error() string {
	msg := "nexvitad: " + e.Status.String() + ": " + e.Message
	if e.cause != nil && e.Message == "" {
		msg += e.cause.Error()
	}
	return msg
}

// Is reports whether target is the sentinel error of e.Status, so that
// errors.Is(err, nexvitad.ErrMismatch) works.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Status]
	return ok && s == target
}

// Unwrap returns the Go-side cause, if any (context.Canceled, ErrClosed, ...).
func (e *Error) Unwrap() error { return e.cause }

func newError(s Status, msg string) *Error { return &Error{Status: s, Message: msg} }

func invalidf(msg string) error { return newError(StatusInvalidArgument, msg) }

func closedError(what string) error {
	return &Error{Status: StatusInvalidArgument, Message: what + " is closed", cause: ErrClosed}
}

// statusError turns a status and the message copied by the shim (malloc'd, may be
// NULL) into an error, freeing the message. It returns nil for StatusOK.
func statusError(st C.nexvitad_status, cmsg *C.char) error {
	msg := ""
	if cmsg != nil {
		msg = C.GoString(cmsg)
		C.free(unsafe.Pointer(cmsg))
	}
	if Status(st) == StatusOK {
		return nil
	}
	return newError(Status(st), msg)
}
