package nexvitad

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// LogLevel is the level of a library log message.
type LogLevel int

// The log levels of the C API.
const (
	LogInfo LogLevel = C.NEXVITAD_LOG_INFO // a model opened, a bank built, loaded or saved
	LogWarn LogLevel = C.NEXVITAD_LOG_WARN // worked, but maybe not as wanted (K-means did not converge)
)

func (l LogLevel) String() string {
	switch l {
	case LogInfo:
		return "INFO"
	case LogWarn:
		return "WARN"
	}
	return fmt.Sprintf("LogLevel(%d)", int(l))
}

var (
	logMu      sync.Mutex // serialises SetLogHandler
	logHandler atomic.Pointer[func(LogLevel, string)]
)

// SetLogHandler sends the library's log messages to fn, process-wide; nil removes the
// handler (the default: the library then writes nothing anywhere). Errors are not logged:
// they come back from the calls. fn may be called from several threads at once,
// including threads the library created, so it must be safe for concurrent use; it
// must not call SetLogHandler, and a panic in it is recovered and dropped. When SetLogHandler returns, the previous handler is no
// longer running.
func SetLogHandler(fn func(level LogLevel, message string)) error {
	logMu.Lock()
	defer logMu.Unlock()
	on := C.int(0)
	if fn != nil {
		on = 1
		logHandler.Store(&fn)
	}
	var cerr *C.char
	err := statusError(C.nxgo_set_log(on, &cerr), cerr)
	if fn == nil && err == nil {
		logHandler.Store(nil)
	}
	return err
}

//export nexvitadGoLog
func nexvitadGoLog(level C.int, message *C.char) {
	fn := logHandler.Load()
	if fn == nil {
		return
	}
	msg := C.GoString(message)
	defer func() { _ = recover() }() // a panic must not unwind into the library's threads
	(*fn)(LogLevel(level), msg)
}
