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
	// Threshold is the image threshold decided at (the bank's, unless
	// ScoreOptions.ImageThreshold set one); Anomalous is Score > Threshold.
	Threshold float32
	Anomalous bool
	// PixelThreshold is the pixel threshold (the bank's, unless
	// ScoreOptions.PixelThreshold set one): map values above it are defects.
	PixelThreshold float32
	// ThresholdFlags says which of Threshold and PixelThreshold were the caller's
	// (ScoreOptions); 0 = both are the bank's (C ABI revision 3).
	ThresholdFlags ThresholdSource
	// ROISource says which region of interest the map, score and regions were confined
	// to (C ABI revision 4): the bank's, the caller's (ScoreOptions.ROI) or none.
	ROISource ROISource
	// Regions are the defect regions, highest peak first, when scored with ScoreWith
	// (unless ScoreOptions.NoRegions); nil from Score and when there are none.
	Regions []Region
	// RegionCount is how many defect regions the image has (of at least
	// ScoreOptions.MinRegionArea pixels) when scored with options: len(Regions) from
	// ScoreWith, and the count alone from ScoreBatchWith (C ABI revision 5), whose
	// Regions stay nil. 0 from Score, ScoreBatch and ScoreWith with NoRegions.
	RegionCount int
	// Width and Height are the map's size, the scored image's own.
	Width, Height int
	// Map is the anomaly map, row-major: the value of pixel (x, y) is Map[y*Width+x].
	Map []float32
	// Timings splits the time spent on the image by stage.
	Timings Timings
}

// ThresholdSource is a set of bits saying which of a Result's thresholds came from the
// caller's ScoreOptions (nexvitad_threshold_source, C ABI revision 3).
type ThresholdSource uint32

// The threshold source bits of Result.ThresholdFlags.
const (
	// ImageThresholdFromCaller: Result.Threshold is ScoreOptions.ImageThreshold.
	ImageThresholdFromCaller ThresholdSource = C.NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER
	// PixelThresholdFromCaller: Result.PixelThreshold is ScoreOptions.PixelThreshold.
	PixelThresholdFromCaller ThresholdSource = C.NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER
)

// Region is one defect region (nexvitad_region, C ABI revision 3): an 8-connected piece
// of the anomaly map strictly above the pixel threshold. Coordinates are image pixels.
type Region struct {
	// X, Y, Width and Height are the bounding box: left edge, top edge and size.
	X, Y, Width, Height int
	// Area is the number of pixels in the region.
	Area uint64
	// CentroidX and CentroidY are the centroid at pixel centres (the top-left pixel's
	// centre is 0, 0).
	CentroidX, CentroidY float32
	// Peak and Mean are the highest and the mean map value over the region.
	Peak, Mean float32
}

// ScoreOptions are per-call scoring choices for ScoreWith and ScoreBatchWith
// (nexvitad_score_options, C ABI revision 3). The zero value, or a nil *ScoreOptions, means the defaults: the bank's
// thresholds, and every defect region found.
type ScoreOptions struct {
	// ImageThreshold decides at this image threshold instead of the bank's; nil = the
	// bank's. 0 is a real setting (any positive score is anomalous); as in C, a negative
	// value also means the bank's, and NaN or +Inf is refused (ErrInvalidArgument).
	ImageThreshold *float32
	// PixelThreshold draws the defect regions (and is reported as Result.PixelThreshold)
	// at this threshold instead of the bank's; the same rules as ImageThreshold.
	PixelThreshold *float32
	// MinRegionArea drops regions of fewer pixels; 0 keeps every region.
	MinRegionArea uint64
	// NoRegions skips finding the regions (Result.Regions stays nil).
	NoRegions bool
	// RegionCapacity is the room for regions in the first call; 0 = 64. When an image
	// has more, it is scored a second time with room for all of them (the C ABI reports
	// the count, like snprintf, and keeps nothing between calls); the result is the same.
	RegionCapacity int
	// ROI is the region of interest for this call (C ABI revision 4), replacing the
	// bank's default: map pixels outside are 0, and the score and regions come from
	// inside (Result.ROISource is ROIFromCaller). nil = the bank's ROI, if it has one.
	// Its bytes are pinned during the call only.
	ROI *Mask
	// IgnoreBankROI scores the whole image even if the bank has a default ROI (when ROI
	// is nil; Result.ROISource is then ROINone).
	IgnoreBankROI bool
}

// defaultRegionCapacity is ScoreOptions.RegionCapacity's default.
const defaultRegionCapacity = 64

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

// ScoreWith scores img against bank with per-call thresholds and defect regions
// (nexvitad_score_with_options, C ABI revision 3): Result.Regions, highest peak first, and
// Result.ThresholdFlags. With nil or zero options the score, map and decision equal
// Score's. Images are read as in Score.
func (m *Model) ScoreWith(bank *Bank, img image.Image, opts *ScoreOptions) (*Result, error) {
	r, err := Raw(img)
	if err != nil {
		return nil, err
	}
	return m.ScoreRawImageWith(bank, r, opts)
}

// ScoreRawImageWith is ScoreWith for a raw pixel buffer.
func (m *Model) ScoreRawImageWith(bank *Bank, img RawImage, opts *ScoreOptions) (*Result, error) {
	if err := img.check("image"); err != nil {
		return nil, err
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	mp, bp, err := acquireBoth(m, bank)
	if err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	defer bank.mu.RUnlock()
	res, err := scoreOneWith(mp, bp, img, opts)
	runtime.KeepAlive(m)
	runtime.KeepAlive(bank)
	return res, err
}

// ScoreWith is Model.ScoreWith with the model the bank was built or loaded with (a NULL
// model); it works after that Model was closed.
func (b *Bank) ScoreWith(img image.Image, opts *ScoreOptions) (*Result, error) {
	r, err := Raw(img)
	if err != nil {
		return nil, err
	}
	return b.ScoreRawImageWith(r, opts)
}

// ScoreRawImageWith is Bank.ScoreWith for a raw pixel buffer.
func (b *Bank) ScoreRawImageWith(img RawImage, opts *ScoreOptions) (*Result, error) {
	if err := img.check("image"); err != nil {
		return nil, err
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.mu.RUnlock()
	res, err := scoreOneWith(nil, bp, img, opts)
	runtime.KeepAlive(b)
	return res, err
}

func (o *ScoreOptions) check() error {
	if o != nil && o.RegionCapacity < 0 {
		return invalidf(fmt.Sprintf("ScoreOptions.RegionCapacity %d is negative", o.RegionCapacity))
	}
	if o != nil && o.ROI != nil {
		return o.ROI.check("ScoreOptions.ROI")
	}
	return nil
}

// toC fills co (whose struct_size is set) from o; nil o = the library's defaults.
func (o *ScoreOptions) toC(co *C.nexvitad_score_options) error {
	var cerr *C.char
	if err := statusError(C.nxgo_score_options_default(co, &cerr), cerr); err != nil {
		return err
	}
	if o == nil {
		return nil
	}
	if o.ImageThreshold != nil {
		co.image_threshold = C.float(*o.ImageThreshold)
	}
	if o.PixelThreshold != nil {
		co.pixel_threshold = C.float(*o.PixelThreshold)
	}
	co.min_region_area = C.uint64_t(o.MinRegionArea)
	if o.IgnoreBankROI {
		co.ignore_bank_roi = 1
	}
	return nil
}

// scoreOneWith is the nexvitad_score_with_options call of ScoreWith (mp may be nil: the
// bank's own model), growing the region slice to the count the library reports: scoring
// is deterministic, so the second call finds the same regions. The caller holds the
// handles' read locks and keeps their Go owners alive.
func scoreOneWith(mp *C.nexvitad_model, bp *C.nexvitad_bank, img RawImage, opts *ScoreOptions) (*Result, error) {
	var co C.nexvitad_score_options
	co.struct_size = C.sizeof_nexvitad_score_options
	if err := opts.toC(&co); err != nil {
		return nil, err
	}
	wantRegions := opts == nil || !opts.NoRegions
	capacity := defaultRegionCapacity
	if opts != nil && opts.RegionCapacity > 0 {
		capacity = opts.RegionCapacity
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	cimg := img.toC(&pin)
	if opts != nil && opts.ROI != nil {
		co.roi = opts.ROI.toC(&pin) // checked by ScoreOptions.check
	}
	res := &Result{Map: make([]float32, img.Width*img.Height)}
	var cres C.nexvitad_result
	var regions []C.nexvitad_region
	var count C.size_t
	for {
		cres = C.nexvitad_result{}
		cres.struct_size = C.sizeof_nexvitad_result
		var rp *C.nexvitad_region
		var countp *C.size_t
		if wantRegions {
			regions = make([]C.nexvitad_region, capacity)
			rp = &regions[0]
			countp = &count
		}
		var cerr *C.char
		st := C.nxgo_score_with_options(mp, bp, &cimg, &co, (*C.float)(&res.Map[0]), C.size_t(len(res.Map)),
			rp, C.size_t(len(regions)), countp, &cres, &cerr)
		if err := statusError(st, cerr); err != nil {
			return nil, err
		}
		if !wantRegions || int(count) <= len(regions) {
			break
		}
		capacity = int(count)
	}
	res.fill(&cres)
	if wantRegions && count > 0 {
		res.Regions = make([]Region, int(count))
		for i := range res.Regions {
			g := &regions[i]
			res.Regions[i] = Region{
				X: int(g.x), Y: int(g.y), Width: int(g.width), Height: int(g.height),
				Area:      uint64(g.area),
				CentroidX: float32(g.centroid_x), CentroidY: float32(g.centroid_y),
				Peak: float32(g.peak), Mean: float32(g.mean),
			}
		}
	}
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
	return m.scoreBatch(bank, images, nil, false)
}

// ScoreBatchWith is ScoreBatch with per-call options applied to every image
// (nexvitad_score_batch_with_options, C ABI revision 5): the thresholds, the region of
// interest (ScoreOptions.ROI, IgnoreBankROI) and MinRegionArea. Each result's
// RegionCount counts that image's defect regions, as ScoreWith would; the regions
// themselves are not returned (Result.Regions stays nil, and NoRegions and
// RegionCapacity do not apply): score one image at a time with ScoreWith for them.
// Result.ThresholdFlags and ROISource say which settings were the caller's. nil options
// are the defaults. A NaN or infinite threshold is an error matching
// ErrInvalidArgument, and nothing is scored.
func (m *Model) ScoreBatchWith(bank *Bank, images []image.Image, opts *ScoreOptions) ([]*Result, error) {
	raws, err := rawImages(images)
	if err != nil {
		return nil, err
	}
	return m.ScoreBatchRawWith(bank, raws, opts)
}

// ScoreBatchRawWith is ScoreBatchWith for raw pixel buffers.
func (m *Model) ScoreBatchRawWith(bank *Bank, images []RawImage, opts *ScoreOptions) ([]*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	return m.scoreBatch(bank, images, opts, true)
}

// scoreBatch is the one batch call: nexvitad_score_batch without options (withOpts
// false), else nexvitad_score_batch_with_options with opts (nil = the defaults; checked
// by the caller).
func (m *Model) scoreBatch(bank *Bank, images []RawImage, opts *ScoreOptions, withOpts bool) ([]*Result, error) {
	if len(images) == 0 {
		return nil, invalidf("no images to score")
	}
	var co C.nexvitad_score_options
	if withOpts {
		co.struct_size = C.sizeof_nexvitad_score_options
		if err := opts.toC(&co); err != nil {
			return nil, err
		}
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
	if withOpts && opts != nil && opts.ROI != nil {
		co.roi = opts.ROI.toC(&pin) // checked by ScoreOptions.check
	}
	cres := make([]C.nexvitad_result, n)
	cres[0].struct_size = C.sizeof_nexvitad_result
	var cerr *C.char
	var st C.nexvitad_status
	if withOpts {
		st = C.nxgo_score_batch_with_options(mp, bp, &cimgs[0], C.size_t(n), &co, &maps[0], &lens[0], &cres[0], &cerr)
	} else {
		st = C.nxgo_score_batch(mp, bp, &cimgs[0], C.size_t(n), &maps[0], &lens[0], &cres[0], &cerr)
	}
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
	r.ThresholdFlags = ThresholdSource(c.threshold_flags)
	r.ROISource = ROISource(c.roi_source)
	r.RegionCount = int(c.region_count)
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
