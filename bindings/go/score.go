package nexvitad

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"image"
	"runtime"
	"time"
)

// Result is the outcome of scoring one image.
type Result struct {
	// Score is the image's anomaly score (the map's max, or its top-fraction mean).
	Score float32
	// Threshold is the bank's image threshold; Anomalous is Score > Threshold.
	Threshold float32
	Anomalous bool
	// PixelThreshold is the bank's pixel threshold: map values above it are defects.
	PixelThreshold float32
	// Width and Height are the map's size, the scored image's own.
	Width, Height int
	// Map is the anomaly map, row-major: the value of pixel (x, y) is Map[y*Width+x].
	Map []float32
	// Timings splits the time spent on the image by stage.
	Timings Timings
}

// Timings is where the time of a score went.
type Timings struct {
	Prepare, Hiera, DINOv2, Head, Matching, UpsampleSmooth time.Duration
}

// Score scores img against bank. Images are read as Raw describes: RGBA, NRGBA and
// Gray images (sub-images included) without a copy, others converted to RGBA.
func (m *Model) Score(bank *Bank, img image.Image) (*Result, error) {
	r, err := Raw(img)
	if err != nil {
		return nil, err
	}
	return m.ScoreRawImage(bank, r)
}

// ScoreRaw scores a raw pixel buffer: w x h pixels of format, rows stride bytes apart
// (0 = tightly packed).
func (m *Model) ScoreRaw(bank *Bank, pix []byte, w, h, stride int, format PixelFormat) (*Result, error) {
	return m.ScoreRawImage(bank, RawImage{Pix: pix, Width: w, Height: h, Stride: stride, Format: format})
}

// ScoreRawImage is ScoreRaw taking a RawImage.
func (m *Model) ScoreRawImage(bank *Bank, img RawImage) (*Result, error) {
	if err := img.check("image"); err != nil {
		return nil, err
	}
	mp, bp, err := acquireBoth(m, bank)
	if err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	defer bank.mu.RUnlock()
	res, err := scoreOne(mp, bp, img)
	runtime.KeepAlive(m)
	runtime.KeepAlive(bank)
	return res, err
}

// scoreOne is the one nexvitad_score call (mp may be nil: the bank's own model). The
// caller holds the handles' read locks and keeps their Go owners alive.
func scoreOne(mp *C.nexvitad_model, bp *C.nexvitad_bank, img RawImage) (*Result, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	cimg := img.toC(&pin)
	res := &Result{Map: make([]float32, img.Width*img.Height)}
	var cres C.nexvitad_result
	cres.struct_size = C.sizeof_nexvitad_result
	var cerr *C.char
	st := C.nxgo_score(mp, bp, &cimg, (*C.float)(&res.Map[0]), C.size_t(len(res.Map)), &cres, &cerr)
	if err := statusError(st, cerr); err != nil {
		return nil, err
	}
	res.fill(&cres)
	return res, nil
}

// Score scores img with the model the bank was built or loaded with (nexvitad_score with
// a NULL model, C ABI revision 2). It works after that Model was closed: a bank keeps its
// model alive, so Close the two in any order. The result equals Model.Score's.
func (b *Bank) Score(img image.Image) (*Result, error) {
	r, err := Raw(img)
	if err != nil {
		return nil, err
	}
	return b.ScoreRawImage(r)
}

// ScoreRawImage is Bank.Score for a raw pixel buffer.
func (b *Bank) ScoreRawImage(img RawImage) (*Result, error) {
	if err := img.check("image"); err != nil {
		return nil, err
	}
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.mu.RUnlock()
	res, err := scoreOne(nil, bp, img)
	runtime.KeepAlive(b)
	return res, err
}

// ScoreBatch scores several images in one call, which lets the encoders run on groups
// of images (faster than one at a time on most machines). It fails as a whole: the
// error names the index of the image at fault.
func (m *Model) ScoreBatch(bank *Bank, images []image.Image) ([]*Result, error) {
	raws, err := rawImages(images)
	if err != nil {
		return nil, err
	}
	return m.ScoreBatchRaw(bank, raws)
}

// ScoreBatchRaw is ScoreBatch for raw pixel buffers.
func (m *Model) ScoreBatchRaw(bank *Bank, images []RawImage) ([]*Result, error) {
	if len(images) == 0 {
		return nil, invalidf("no images to score")
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	n := len(images)
	cimgs := make([]C.nexvitad_image, n)
	maps := make([]*C.float, n) // pinned Go pointers, allowed in memory passed to C
	lens := make([]C.size_t, n)
	results := make([]*Result, n)
	for i := range images {
		if err := images[i].check(fmt.Sprintf("images[%d]", i)); err != nil {
			return nil, err
		}
		cimgs[i] = images[i].toC(&pin)
		results[i] = &Result{Map: make([]float32, images[i].Width*images[i].Height)}
		pin.Pin(&results[i].Map[0])
		maps[i] = (*C.float)(&results[i].Map[0])
		lens[i] = C.size_t(len(results[i].Map))
	}
	mp, bp, err := acquireBoth(m, bank)
	if err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	defer bank.mu.RUnlock()
	cres := make([]C.nexvitad_result, n)
	cres[0].struct_size = C.sizeof_nexvitad_result
	var cerr *C.char
	st := C.nxgo_score_batch(mp, bp, &cimgs[0], C.size_t(n), &maps[0], &lens[0], &cres[0], &cerr)
	runtime.KeepAlive(m)
	runtime.KeepAlive(bank)
	if err := statusError(st, cerr); err != nil {
		return nil, err
	}
	for i := range results {
		results[i].fill(&cres[i])
	}
	return results, nil
}

func (r *Result) fill(c *C.nexvitad_result) {
	r.Score = float32(c.image_score)
	r.Threshold = float32(c.image_threshold)
	r.PixelThreshold = float32(c.pixel_threshold)
	r.Anomalous = c.is_anomalous != 0
	r.Width = int(c.width)
	r.Height = int(c.height)
	sec := func(s C.double) time.Duration { return time.Duration(float64(s) * float64(time.Second)) }
	r.Timings = Timings{
		Prepare:        sec(c.prepare_s),
		Hiera:          sec(c.hiera_s),
		DINOv2:         sec(c.dinov2_s),
		Head:           sec(c.head_s),
		Matching:       sec(c.matching_s),
		UpsampleSmooth: sec(c.upsample_smooth_s),
	}
}

// acquireBoth read-locks the model, then the bank (always in that order); on success
// the caller releases both.
func acquireBoth(m *Model, b *Bank) (*C.nexvitad_model, *C.nexvitad_bank, error) {
	mp, err := m.acquire()
	if err != nil {
		return nil, nil, err
	}
	bp, err := b.acquire()
	if err != nil {
		m.mu.RUnlock()
		return nil, nil, err
	}
	return mp, bp, nil
}
