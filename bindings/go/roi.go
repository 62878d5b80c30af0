package nexvitad

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
)

// Mask is a region-of-interest mask (nexvitad_mask, C ABI revision 4): one byte per pixel,
// non-zero = inspect, 0 = ignore (a label, a fixture, the background). Row y starts at
// Data[y*Stride]; Stride 0 means Width. A mask may have any size: the library scales it to
// each image (nearest neighbour), so one mask drawn at the camera's resolution serves every
// image of that camera. Data is pinned during the call that reads it; the library copies
// what it keeps (a bank's default ROI).
//
// A mask that selects no pixel (all zero) is refused by the library: an error matching
// ErrInvalidArgument whose message names options->roi.
type Mask struct {
	Data          []byte
	Width, Height int
	Stride        int
}

// ROISource says which region of interest a Result was confined to
// (nexvitad_roi_source, C ABI revision 4).
type ROISource uint32

// The region-of-interest sources of Result.ROISource.
const (
	// ROINone: no region of interest, the whole image.
	ROINone ROISource = C.NEXVITAD_ROI_NONE
	// ROIFromBank: the bank's default ROI (BankOptions.ROI when it was built).
	ROIFromBank ROISource = C.NEXVITAD_ROI_FROM_BANK
	// ROIFromCaller: the caller's ScoreOptions.ROI.
	ROIFromCaller ROISource = C.NEXVITAD_ROI_FROM_CALLER
)

// String returns "none", "bank" or "caller".
func (s ROISource) String() string {
	switch s {
	case ROINone:
		return "none"
	case ROIFromBank:
		return "bank"
	case ROIFromCaller:
		return "caller"
	}
	return fmt.Sprintf("ROISource(%d)", uint32(s))
}

// check validates m against its buffer, which the library cannot see the length of.
func (m *Mask) check(name string) error {
	if m.Width <= 0 || m.Height <= 0 || uint64(m.Width) > math.MaxUint32 || uint64(m.Height) > math.MaxUint32 {
		return invalidf(fmt.Sprintf("%s: mask size %dx%d must be positive and fit 32 bits", name, m.Width, m.Height))
	}
	stride := uint64(m.Stride)
	if m.Stride == 0 {
		stride = uint64(m.Width)
	} else if m.Stride < 0 || stride < uint64(m.Width) {
		return invalidf(fmt.Sprintf("%s: stride %d is smaller than the mask width %d", name, m.Stride, m.Width))
	}
	hi, lo := mulU64(stride, uint64(m.Height-1))
	need := lo + uint64(m.Width)
	if hi != 0 || need < lo || need > uint64(len(m.Data)) {
		if m.Data == nil {
			return invalidf(fmt.Sprintf("%s: mask data is nil", name))
		}
		return invalidf(fmt.Sprintf("%s: mask data holds %d bytes, a %dx%d mask with stride %d needs %d",
			name, len(m.Data), m.Width, m.Height, stride, need))
	}
	return nil
}

// toC describes m for the library in a nexvitad_mask allocated in Go memory, pinning both
// the mask bytes and that struct with p, so that an options struct passed to C may point
// at it (cgo rules: Go memory given to C holds no unpinned Go pointers). m must have been
// checked.
func (m *Mask) toC(p *runtime.Pinner) *C.nexvitad_mask {
	p.Pin(&m.Data[0])
	cm := &C.nexvitad_mask{
		data:   (*C.uint8_t)(&m.Data[0]),
		width:  C.uint32_t(m.Width),
		height: C.uint32_t(m.Height),
		stride: C.size_t(m.Stride),
	}
	p.Pin(cm)
	return cm
}

// ROI returns the bank's default region of interest (nexvitad_bank_get_roi, C ABI
// revision 4): a packed mask, 1 = inspect and 0 = ignore, in new memory. It returns nil and
// no error for a bank built without one.
func (b *Bank) ROI() (*Mask, error) {
	info, err := b.Info()
	if err != nil {
		return nil, err
	}
	if !info.HasROI() {
		return nil, nil
	}
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.mu.RUnlock()
	data := make([]byte, info.ROIWidth*info.ROIHeight)
	var cerr *C.char
	err = statusError(C.nxgo_bank_get_roi(bp, (*C.uint8_t)(&data[0]), C.size_t(len(data)), &cerr), cerr)
	runtime.KeepAlive(b)
	if err != nil {
		return nil, err
	}
	return &Mask{Data: data, Width: info.ROIWidth, Height: info.ROIHeight}, nil
}

// Recalibrated returns a new bank whose thresholds aim at another false-positive rate
// (nexvitad_bank_recalibrate, C ABI revision 4), computed from the normal-image scores the
// bank stored when it was built: nothing is re-encoded. The new bank has the same model,
// vectors and ROI; b is unchanged (goroutines scoring with it are unaffected). Close the
// new bank when done; Save it to keep it.
//
// targetFPR must be in (0, 1); otherwise, and for a bank saved before banks stored their
// pixel-score tail (rebuild it), the error matches ErrInvalidArgument.
func (b *Bank) Recalibrated(targetFPR float32) (*Bank, error) {
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.mu.RUnlock()
	var out *C.nexvitad_bank
	var cerr *C.char
	err = statusError(C.nxgo_bank_recalibrate(bp, C.float(targetFPR), &out, &cerr), cerr)
	runtime.KeepAlive(b)
	if err != nil {
		return nil, err
	}
	return newBank(out), nil
}
