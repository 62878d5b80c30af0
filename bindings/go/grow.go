package nexvitad

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"image"
	"runtime"
	"runtime/cgo"
)

// GrowOptions are the optional arguments of Bank.AddWith, Bank.AddRawWith and
// Bank.MergeWith. A nil *GrowOptions means none.
type GrowOptions struct {
	// Progress, if set, is called on the calling goroutine after each step: encoding the
	// new images (Add only; Total = the number of new images), then clustering and
	// calibration over all images (Total = the iteration cap, the number of all images).
	// To stop the call, cancel its context.
	Progress func(Progress)
}

// Add returns a new bank: b with more good images (nexvitad_bank_add, C ABI revision 5),
// fitted and calibrated again over all its images, so it equals bit for bit the bank
// Model.BuildBank makes from all of them at once with the same options. The new images
// get b's augmentation and region of interest and are encoded with b's own model (which
// may have been closed). b is unchanged (goroutines scoring with it are unaffected); close
// the new bank when done, and Save it to keep it. Each image is read as Raw describes.
//
// b must have been built with BankOptions.Growable; otherwise the error matches
// ErrInvalidArgument and says so. A tiled bank grows too; a per-position one
// (TilePerPosition) only with images of its one size (else ErrInvalidArgument naming both
// sizes). More rows than BankOptions.MaxVectors
// give ErrLimitExceeded. Cancelling ctx stops the call at its next progress step; the
// error then matches ErrCancelled and wraps ctx.Err().
func (b *Bank) Add(ctx context.Context, images ...image.Image) (*Bank, error) {
	return b.AddWith(ctx, images, nil)
}

// AddWith is Add with options (a progress callback).
func (b *Bank) AddWith(ctx context.Context, images []image.Image, opts *GrowOptions) (*Bank, error) {
	raws, err := rawImages(images)
	if err != nil {
		return nil, err
	}
	return b.AddRawWith(ctx, raws, opts)
}

// AddRaw is Add for raw pixel buffers.
func (b *Bank) AddRaw(ctx context.Context, images ...RawImage) (*Bank, error) {
	return b.AddRawWith(ctx, images, nil)
}

// AddRawWith is AddRaw with options (a progress callback).
func (b *Bank) AddRawWith(ctx context.Context, images []RawImage, opts *GrowOptions) (*Bank, error) {
	if ctx == nil {
		return nil, invalidf("ctx is nil")
	}
	if len(images) == 0 {
		return nil, invalidf("no images to add to the bank")
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	cimgs := make([]C.nexvitad_image, len(images))
	for i := range images {
		if err := images[i].check(fmt.Sprintf("images[%d]", i)); err != nil {
			return nil, err
		}
		cimgs[i] = images[i].toC(&pin)
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Status: StatusCancelled, Message: "context done before adding images started", cause: err}
	}
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.mu.RUnlock()
	return grow(ctx, opts, func(progress C.int, user C.uintptr_t, out **C.nexvitad_bank, cerr **C.char) C.nexvitad_status {
		st := C.nxgo_bank_add(bp, &cimgs[0], C.size_t(len(cimgs)), progress, user, out, cerr)
		runtime.KeepAlive(b)
		return st
	})
}

// Merge returns a new bank from b's images followed by other's (nexvitad_bank_merge, C ABI
// revision 5), fitted and calibrated again: bit for bit the bank Model.BuildBank makes
// from all of them at once. Both banks must be growable (else ErrInvalidArgument), come
// from the same model and agree on every setting that shapes a bank: scorer, K, sigma,
// image score, augmentation, seed, target FPR, Sinkhorn and coreset parameters, region of
// interest, feature grid, tiling; otherwise the error matches ErrMismatch and names the
// first that differs. The new bank scores with b's model; b and other are unchanged.
// other may be b. Cancelling ctx stops the call at its next progress step (ErrCancelled,
// wrapping ctx.Err()).
func (b *Bank) Merge(ctx context.Context, other *Bank) (*Bank, error) {
	return b.MergeWith(ctx, other, nil)
}

// MergeWith is Merge with options (a progress callback).
func (b *Bank) MergeWith(ctx context.Context, other *Bank, opts *GrowOptions) (*Bank, error) {
	if ctx == nil {
		return nil, invalidf("ctx is nil")
	}
	if other == nil {
		return nil, invalidf("other bank is nil")
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Status: StatusCancelled, Message: "context done before merging started", cause: err}
	}
	ap, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.mu.RUnlock()
	bp := ap
	if other != b { // a second read lock on one RWMutex could deadlock behind a Close
		if bp, err = other.acquire(); err != nil {
			return nil, err
		}
		defer other.mu.RUnlock()
	}
	return grow(ctx, opts, func(progress C.int, user C.uintptr_t, out **C.nexvitad_bank, cerr **C.char) C.nexvitad_status {
		st := C.nxgo_bank_merge(ap, bp, progress, user, out, cerr)
		runtime.KeepAlive(b)
		runtime.KeepAlive(other)
		return st
	})
}

// grow runs nxgo_bank_add or nxgo_bank_merge with the progress callback of a bank build:
// ctx cancels through it, a panic of opts.Progress is carried across C and re-raised here.
func grow(ctx context.Context, opts *GrowOptions, call func(progress C.int, user C.uintptr_t, out **C.nexvitad_bank, cerr **C.char) C.nexvitad_status) (*Bank, error) {
	state := &buildState{ctx: ctx}
	if opts != nil {
		state.progress = opts.Progress
	}
	h := cgo.NewHandle(state)
	defer h.Delete()
	var out *C.nexvitad_bank
	var cerr *C.char
	st := call(1, C.uintptr_t(h), &out, &cerr)
	err := statusError(st, cerr)
	if state.panicked != nil {
		if out != nil {
			C.nxgo_bank_free(out, nil)
		}
		panic(state.panicked) // the Progress callback's panic, carried across C
	}
	if err != nil {
		if Status(st) == StatusCancelled {
			err.(*Error).cause = ctx.Err()
		}
		return nil, err
	}
	return newBank(out), nil
}
