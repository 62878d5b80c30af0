package nexvitad

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Graph optimisation levels for Options.OptimizationLevel, with C's meanings
// (nexvitad_options.optimization_level): 0 is a real setting (off), and a negative value
// means the library's default (3, all).
const (
	OptimizationDefault  = -1 // the library's default (3); nil OptimizationLevel means the same
	OptimizationOff      = 0  // graph optimisation off
	OptimizationBasic    = 1
	OptimizationExtended = 2
	OptimizationAll      = 3
)

// Options says how to open a model. The zero value (or a nil *Options) gives the
// library's defaults.
type Options struct {
	// ORTLibrary is the libonnxruntime.so to load; "" searches $NEXVITAD_ORT_LIBRARY,
	// $ORT_DYLIB_PATH, then the folder holding libnexvitad.so. A process loads ONNX
	// Runtime once.
	ORTLibrary string
	// ExecutionProvider is "cpu" (also "") or "cuda:N" (needs a CUDA build of ONNX Runtime).
	ExecutionProvider string
	// IntraThreads is ONNX Runtime's intra-op threads per session; 0 lets it choose.
	IntraThreads int
	// OptimizationLevel is the graph optimisation level with C's meanings: nil (or a
	// negative value, OptimizationDefault) = the default (3, all); 0 (OptimizationOff) =
	// off; 1..3. A pointer, like BankOptions.Sigma, because 0 is a real setting and the
	// zero Options must give the defaults: Options{OptimizationLevel: nexvitad.Int(nexvitad.OptimizationOff)}.
	OptimizationLevel *int
	// MaxImageSide is the largest accepted image width or height; 0 = 16384.
	MaxImageSide int
	// MaxImagePixels is the largest accepted width x height; 0 = 64 Mi pixels.
	MaxImagePixels int64
	// TileBatch is the number of tiles per encoder call when scoring tiled images (C ABI
	// revision 6); 0 = the default for the execution provider (4 on the CPU, 16 on CUDA),
	// at most 256 (above it Open returns an error matching ErrInvalidArgument). The tiles
	// of one image, and of the next images of a batch, fill each call. Larger calls hold
	// more memory and are not faster on the CPU; on a GPU they keep the device busy.
	TileBatch int
	// ParallelEncoders runs the two encoders (Hiera and DINOv2) side by side, each on its
	// own thread, instead of one after the other (C ABI revision 6); with IntraThreads 0
	// each encoder then gets half the cores. Faster at batch 1 on CPUs with few cores; the
	// scores are the same. false (the zero value) = off.
	ParallelEncoders bool
}

// Model is an opened model folder. It is safe for concurrent use by any number of
// goroutines. Close releases it; banks built or loaded with it stay usable.
type Model struct {
	// mu is held for reading by every call that uses ptr and for writing by Close, so
	// Close waits for calls in flight and later calls see the handle closed.
	mu          sync.RWMutex
	ptr         *C.nexvitad_model
	fingerprint string
}

// Open opens the model folder dir (model.json, hiera.onnx, dinov2.onnx, optional
// head.safetensors). opts may be nil for the defaults.
func Open(dir string, opts *Options) (*Model, error) {
	if got := LibraryABIVersion(); got != ABIVersion {
		return nil, newError(StatusUnsupported,
			fmt.Sprintf("libnexvitad has C ABI version %d, this package needs %d", got, ABIVersion))
	}
	if err := checkPath("dir", dir); err != nil {
		return nil, err
	}
	var co C.nexvitad_options
	co.struct_size = C.sizeof_nexvitad_options
	var cerr *C.char
	if err := statusError(C.nxgo_options_default(&co, &cerr), cerr); err != nil {
		return nil, err
	}
	if opts != nil {
		if err := fillOptions(&co, opts); err != nil {
			return nil, err
		}
		if opts.ORTLibrary != "" {
			co.ort_library = C.CString(opts.ORTLibrary)
			defer C.free(unsafe.Pointer(co.ort_library))
		}
		if opts.ExecutionProvider != "" {
			co.execution_provider = C.CString(opts.ExecutionProvider)
			defer C.free(unsafe.Pointer(co.execution_provider))
		}
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var ptr *C.nexvitad_model
	var cfp *C.char
	if err := statusError(C.nxgo_model_open(cdir, &co, &ptr, &cfp, &cerr), cerr); err != nil {
		return nil, err
	}
	m := &Model{ptr: ptr, fingerprint: C.GoString(cfp)}
	C.free(unsafe.Pointer(cfp))
	// A safety net only: a forgotten Close must not leak the ONNX sessions forever.
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

func fillOptions(co *C.nexvitad_options, o *Options) error {
	for _, s := range []struct {
		name string
		v    string
	}{{"Options.ORTLibrary", o.ORTLibrary}, {"Options.ExecutionProvider", o.ExecutionProvider}} {
		if strings.IndexByte(s.v, 0) >= 0 {
			return invalidf(s.name + " contains a NUL byte")
		}
	}
	threads, err := toU32("Options.IntraThreads", o.IntraThreads)
	if err != nil {
		return err
	}
	co.intra_threads = threads
	// Mirrors C: the value goes through as is (a negative one as -1 in the uint32_t, which
	// the library reads as "the default"; above 3 the library refuses it).
	if l := o.OptimizationLevel; l != nil {
		switch {
		case *l < 0:
			co.optimization_level = C.uint32_t(math.MaxUint32) // (uint32_t)-1
		case *l <= math.MaxUint32:
			co.optimization_level = C.uint32_t(*l)
		default:
			return invalidf(fmt.Sprintf("Options.OptimizationLevel %d is out of range", *l))
		}
	}
	if o.MaxImageSide != 0 {
		side, err := toU32("Options.MaxImageSide", o.MaxImageSide)
		if err != nil {
			return err
		}
		co.max_image_side = side
	}
	if o.MaxImagePixels < 0 {
		return invalidf(fmt.Sprintf("Options.MaxImagePixels %d is negative", o.MaxImagePixels))
	}
	if o.MaxImagePixels != 0 {
		co.max_image_pixels = C.uint64_t(o.MaxImagePixels)
	}
	// Negative or beyond uint32: refused here; 257 and up: refused by the library.
	tileBatch, err := toU32("Options.TileBatch", o.TileBatch)
	if err != nil {
		return err
	}
	co.tile_batch = tileBatch
	if o.ParallelEncoders {
		co.parallel_encoders = 1
	}
	return nil
}

// Fingerprint identifies the encoders, the fusion configuration and the head (64 hex
// digits). A bank records it and refuses any other model. It stays readable after Close.
func (m *Model) Fingerprint() string {
	if m == nil {
		return ""
	}
	return m.fingerprint
}

// Close releases the model. It waits for calls in flight, is idempotent, and any later
// use of m returns an error wrapping ErrClosed.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr == nil {
		return nil
	}
	var cerr *C.char
	err := statusError(C.nxgo_model_free(m.ptr, &cerr), cerr)
	m.ptr = nil
	runtime.SetFinalizer(m, nil)
	return err
}

// acquire returns the live handle with m's read lock held; release with m.mu.RUnlock.
func (m *Model) acquire() (*C.nexvitad_model, error) {
	if m == nil {
		return nil, invalidf("model is nil")
	}
	m.mu.RLock()
	if m.ptr == nil {
		m.mu.RUnlock()
		return nil, closedError("model")
	}
	return m.ptr, nil
}

func checkPath(name, p string) error {
	if p == "" {
		return invalidf(name + " is empty")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return invalidf(name + " contains a NUL byte")
	}
	return nil
}

func toU32(name string, v int) (C.uint32_t, error) {
	if v < 0 || uint64(v) > math.MaxUint32 {
		return 0, invalidf(fmt.Sprintf("%s %d is out of range 0..%d", name, v, uint32(math.MaxUint32)))
	}
	return C.uint32_t(v), nil
}
