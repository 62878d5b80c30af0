package nexvitad

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// TrainPhase is the phase of a training run reported to TrainOptions.Progress.
type TrainPhase int

// The training phases.
const (
	TrainEncode TrainPhase = C.NEXVITAD_TRAIN_ENCODE // Done/Total = images encoded (once each)
	TrainStep   TrainPhase = C.NEXVITAD_TRAIN_STEP   // Done/Total = steps of the whole run
)

// TrainLosses are the loss terms of a step (or a mean over steps) and the pseudo-label
// coverage: Loss = Src + λ1·PL + λ2·Cons.
type TrainLosses struct {
	Loss, Src, PL, Cons float64
	// Coverage is the share of target cells whose pseudo label passed θ, in [0, 1].
	Coverage float64
}

// TrainProgress is one progress report of Train.
type TrainProgress struct {
	Phase       TrainPhase
	Done, Total int
	// Epoch counts from 0; Step is the steps done in this epoch (both 0 while encoding).
	Epoch, Epochs, Step, StepsPerEpoch int
	// Losses are this step's terms (zero while encoding); EpochMean their running mean
	// over this epoch's steps.
	Losses, EpochMean TrainLosses
}

// TrainOptions says what to train on and how. DataRoot, Sources, Target and OutDir are
// required; every other zero value (or nil pointer) means the library's default, the one of
// `nexvitad train`: 4 epochs, batch 8, AdamW lr 1e-3 and weight decay 0.01, θ/λ1/λ2 from the
// model, seed 0, decoder width 32, a checkpoint every 20 steps, 2 perturbed copies per
// target image (noise 8, jitter 0.2, flips).
type TrainOptions struct {
	// DataRoot is a dataset folder in MVTec AD layout, one sub-folder per domain.
	DataRoot string
	// Sources are the labelled domains (with defective test images and masks).
	Sources []string
	// Target is the unlabeled domain to adapt to; it must not be a source.
	Target string
	// OutDir is the new model folder: new or empty, unless Resume.
	OutDir string

	Epochs int
	Batch  int
	LR     float64
	// WeightDecay is AdamW's decoupled weight decay; nil = 0.01.
	WeightDecay *float64
	// Theta is the pseudo-label confidence threshold in (0, 1); 0 = the model's (0.7).
	Theta float64
	// Lambda1 and Lambda2 weight the pseudo-label and consistency losses; nil = the
	// model's (1.0, 0.5).
	Lambda1, Lambda2 *float64
	Seed             uint64
	DecoderWidth     int
	// CheckpointEvery is the number of steps between checkpoints; nil = 20, 0 = only when
	// cancelled and at the end.
	CheckpointEvery *int
	// Copies is the number of perturbed copies per target image; 0 = 2.
	Copies  int
	NoFlips bool
	// NoiseStd (8-bit levels) and Jitter ([0, 1)) perturb the copies; nil = 8 and 0.2.
	NoiseStd, Jitter *float64
	// Resume continues the run whose checkpoint is in OutDir (same data and options; only
	// Epochs and CheckpointEvery may differ), to the same result as an unbroken run.
	Resume bool
	// TargetTest also trains on the target's test images, unlabeled.
	TargetTest bool
	// CacheDir is the folder of the feature cache (features.nxcache: every training
	// image's encoder outputs, written once, reused by Resume); "" = OutDir. A folder
	// shared by runs on the same data encodes the images once; a cache there of other data
	// gives ErrMismatch and is left alone. Needs library ABI revision 7.
	CacheDir string
	// CacheMem is the memory, in bytes, for feature sets held in memory; the others are
	// read from the cache file at each step. 0 = 1/8 of RAM, at most 512 MiB. Below one
	// step's feature sets gives ErrInvalidArgument naming the least. Needs revision 7.
	CacheMem uint64
	// Progress, if set, is called on the training goroutine after each encoded image and
	// each step. It must not call Close on the model; to stop the run, cancel the context.
	Progress func(TrainProgress)
}

// TrainResult summarises a finished run.
type TrainResult struct {
	Steps, StepsRun int // steps of the whole run; steps this call ran (fewer after Resume)
	Epochs          int
	StepsPerEpoch   int
	SourceImages    int
	TargetImages    int
	// LastEpoch are the mean loss terms of the last epoch.
	LastEpoch                   TrainLosses
	EncodeSeconds, TrainSeconds float64
	// CacheBytes is the feature cache's size on disk; Encoded and Reused count the feature
	// sets (images and perturbed copies) this call encoded and found in the cache.
	CacheBytes      uint64
	Encoded, Reused int
}

// Float64 returns a pointer to v, for the optional fields of TrainOptions.
func Float64(v float64) *float64 { return &v }

// Int returns a pointer to v, for TrainOptions.CheckpointEvery and Options.OptimizationLevel.
func Int(v int) *int { return &v }

func (o *TrainOptions) toC(co *C.nexvitad_train_options) error {
	for _, f := range []struct {
		name string
		v    int
		dst  *C.uint32_t
	}{
		{"TrainOptions.Epochs", o.Epochs, &co.epochs}, {"TrainOptions.Batch", o.Batch, &co.batch},
		{"TrainOptions.DecoderWidth", o.DecoderWidth, &co.decoder_width}, {"TrainOptions.Copies", o.Copies, &co.copies},
	} {
		if f.v == 0 {
			continue
		}
		v, err := toU32(f.name, f.v)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	if o.CheckpointEvery != nil {
		v, err := toU32("TrainOptions.CheckpointEvery", *o.CheckpointEvery)
		if err != nil {
			return err
		}
		co.checkpoint_every = v
	}
	if o.LR != 0 {
		co.lr = C.double(o.LR)
	}
	if o.Theta != 0 {
		co.theta = C.double(o.Theta)
	}
	for _, f := range []struct {
		v   *float64
		dst *C.double
	}{{o.WeightDecay, &co.weight_decay}, {o.Lambda1, &co.lambda1}, {o.Lambda2, &co.lambda2}, {o.NoiseStd, &co.noise_std}, {o.Jitter, &co.jitter}} {
		if f.v != nil {
			*f.dst = C.double(*f.v)
		}
	}
	co.seed = C.uint64_t(o.Seed)
	if o.NoFlips {
		co.flips = 0
	}
	if o.Resume {
		co.resume = 1
	}
	if o.TargetTest {
		co.target_test = 1
	}
	co.cache_mem = C.uint64_t(o.CacheMem)
	return nil
}

// trainState is what the training progress callback reaches through its cgo.Handle.
type trainState struct {
	ctx      context.Context
	progress func(TrainProgress)
	panicked any
}

func losses(loss, src, pl, cons, coverage C.double) TrainLosses {
	return TrainLosses{Loss: float64(loss), Src: float64(src), PL: float64(pl), Cons: float64(cons), Coverage: float64(coverage)}
}

func clampInt(v uint64) int {
	if v > math.MaxInt {
		return math.MaxInt
	}
	return int(v)
}

// nexvitadGoTrainProgress is the progress callback of nexvitad_train (reached through the
// C trampoline in shim.c). Returning non-zero cancels the run.
//
//export nexvitadGoTrainProgress
func nexvitadGoTrainProgress(user C.uintptr_t, p *C.nexvitad_train_progress) (cancel C.int) {
	st := cgo.Handle(user).Value().(*trainState)
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
		st.progress(TrainProgress{
			Phase:         TrainPhase(p.phase),
			Done:          clampInt(uint64(p.done)),
			Total:         clampInt(uint64(p.total)),
			Epoch:         int(p.epoch),
			Epochs:        int(p.epochs),
			Step:          int(p.step),
			StepsPerEpoch: int(p.steps_per_epoch),
			Losses:        losses(p.loss, p.l_src, p.l_pl, p.l_cons, p.coverage),
			EpochMean:     losses(p.mean_loss, p.mean_l_src, p.mean_l_pl, p.mean_l_cons, p.mean_coverage),
		})
		if st.ctx.Err() != nil {
			return 1
		}
	}
	return 0
}

// Train adapts base's fusion head to the labelled opts.Sources and the unlabeled
// opts.Target of the dataset opts.DataRoot and writes a new model folder opts.OutDir; open
// it with Open and build its banks with it (its fingerprint differs from base's).
//
// Cancelling ctx stops the run at its next progress report (after the current image or
// step); the error then matches ErrCancelled and wraps ctx.Err(). A run stopped after its
// first step leaves a checkpoint in OutDir that Resume continues. Bad domains or options
// (θ outside (0, 1), the target among the sources, ...) give ErrInvalidArgument, a missing
// DataRoot ErrIO, a resume with other data or options ErrMismatch.
//
// base stays usable meanwhile (scoring may run concurrently); Close on it waits for the run.
func Train(ctx context.Context, base *Model, opts *TrainOptions) (TrainResult, error) {
	if ctx == nil {
		return TrainResult{}, invalidf("ctx is nil")
	}
	if opts == nil {
		return TrainResult{}, invalidf("opts is nil: DataRoot, Sources, Target and OutDir are required")
	}
	for _, p := range []struct{ name, v string }{{"TrainOptions.DataRoot", opts.DataRoot}, {"TrainOptions.Target", opts.Target}, {"TrainOptions.OutDir", opts.OutDir}} {
		if err := checkPath(p.name, p.v); err != nil {
			return TrainResult{}, err
		}
	}
	if strings.IndexByte(opts.CacheDir, 0) >= 0 {
		return TrainResult{}, invalidf("TrainOptions.CacheDir contains a NUL byte")
	}
	for i, s := range opts.Sources {
		if strings.IndexByte(s, 0) >= 0 {
			return TrainResult{}, invalidf(fmt.Sprintf("TrainOptions.Sources[%d] contains a NUL byte", i))
		}
	}
	var co C.nexvitad_train_options
	co.struct_size = C.sizeof_nexvitad_train_options
	var cerr *C.char
	if err := statusError(C.nxgo_train_options_default(&co, &cerr), cerr); err != nil {
		return TrainResult{}, err
	}
	if err := opts.toC(&co); err != nil {
		return TrainResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return TrainResult{}, &Error{Status: StatusCancelled, Message: "context done before training started", cause: err}
	}

	cstr := func(s string) *C.char { return C.CString(s) }
	root, target, out := cstr(opts.DataRoot), cstr(opts.Target), cstr(opts.OutDir)
	defer C.free(unsafe.Pointer(root))
	defer C.free(unsafe.Pointer(target))
	defer C.free(unsafe.Pointer(out))
	if opts.CacheDir != "" {
		co.cache_dir = cstr(opts.CacheDir)
		defer C.free(unsafe.Pointer(co.cache_dir))
	}
	// The array of C strings lives in C memory: it holds C pointers only.
	var sources **C.char
	if n := len(opts.Sources); n > 0 {
		arr := unsafe.Slice((**C.char)(C.malloc(C.size_t(n)*C.size_t(unsafe.Sizeof((*C.char)(nil))))), n)
		for i, s := range opts.Sources {
			arr[i] = C.CString(s)
		}
		defer func() {
			for _, p := range arr {
				C.free(unsafe.Pointer(p))
			}
			C.free(unsafe.Pointer(&arr[0]))
		}()
		sources = &arr[0]
	}

	mp, err := base.acquire()
	if err != nil {
		return TrainResult{}, err
	}
	defer base.mu.RUnlock()
	state := &trainState{ctx: ctx, progress: opts.Progress}
	h := cgo.NewHandle(state)
	defer h.Delete()
	var cr C.nexvitad_train_result
	cr.struct_size = C.sizeof_nexvitad_train_result
	st := C.nxgo_train(mp, root, sources, C.size_t(len(opts.Sources)), target, out, &co, C.uintptr_t(h), &cr, &cerr)
	runtime.KeepAlive(base)
	err = statusError(st, cerr)
	if state.panicked != nil {
		panic(state.panicked) // the Progress callback's panic, carried across C
	}
	if err != nil {
		if Status(st) == StatusCancelled {
			err.(*Error).cause = ctx.Err()
		}
		return TrainResult{}, err
	}
	return TrainResult{
		Steps:         clampInt(uint64(cr.steps)),
		StepsRun:      clampInt(uint64(cr.steps_run)),
		Epochs:        int(cr.epochs),
		StepsPerEpoch: int(cr.steps_per_epoch),
		SourceImages:  int(cr.source_images),
		TargetImages:  int(cr.target_images),
		LastEpoch:     losses(cr.loss, cr.l_src, cr.l_pl, cr.l_cons, cr.coverage),
		EncodeSeconds: float64(cr.encode_s),
		TrainSeconds:  float64(cr.train_s),
		CacheBytes:    uint64(cr.cache_bytes),
		Encoded:       clampInt(uint64(cr.encoded)),
		Reused:        clampInt(uint64(cr.reused)),
	}, nil
}
