package nexvitad

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"image"
	"math"
	"runtime"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Scorer says how patches are matched against the bank.
type Scorer uint32

// The scorers of the C API.
const (
	ScorerSinkhorn Scorer = C.NEXVITAD_SCORER_SINKHORN // K prototypes (the method's choice, default)
	ScorerFull     Scorer = C.NEXVITAD_SCORER_FULL     // every normal patch vector
	ScorerCoreset  Scorer = C.NEXVITAD_SCORER_CORESET  // a greedy-coreset subsample
)

// ImageScoreMode says how the image score is drawn from the anomaly map.
type ImageScoreMode uint32

// The image score modes of the C API.
const (
	ImageScoreMax     ImageScoreMode = C.NEXVITAD_IMAGE_SCORE_MAX      // the map's maximum (default)
	ImageScoreTopMean ImageScoreMode = C.NEXVITAD_IMAGE_SCORE_TOP_MEAN // mean of the top fraction
)

// Augment is a set of extra copies of each normal image put in the bank.
type Augment uint32

// Augmentation flags; combine with |.
const (
	AugmentHFlip Augment = C.NEXVITAD_AUGMENT_HFLIP
	AugmentVFlip Augment = C.NEXVITAD_AUGMENT_VFLIP
	AugmentRot90 Augment = C.NEXVITAD_AUGMENT_ROT90 // needs a square encoder input
)

// TileLayout says where a tiled bank keeps its normal features (nexvitad_tile_layout,
// C ABI revision 3).
type TileLayout uint32

// The tile layouts of the C API (nexvitad_tile_layout).
const (
	// TileShared keeps one bank for the tiles of every position (textures, webs,
	// surfaces); the default.
	TileShared TileLayout = C.NEXVITAD_TILE_SHARED
	// TilePerPosition keeps one bank per tile position (aligned objects). It is built from
	// images of one size and scores only images of that size; others give an error
	// matching ErrInvalidArgument.
	TilePerPosition TileLayout = C.NEXVITAD_TILE_PER_POSITION
)

// String returns "shared" or "per_position" (the names the CLI reads).
func (l TileLayout) String() string {
	switch l {
	case TileShared:
		return "shared"
	case TilePerPosition:
		return "per_position"
	}
	return fmt.Sprintf("TileLayout(%d)", uint32(l))
}

// Stage is the phase of a bank build reported to BankOptions.Progress.
type Stage int

// The build stages.
const (
	StageEncode    Stage = C.NEXVITAD_STAGE_ENCODE    // Total = number of images (of tiles for a tiled bank)
	StageCluster   Stage = C.NEXVITAD_STAGE_CLUSTER   // Total = the iteration cap
	StageCalibrate Stage = C.NEXVITAD_STAGE_CALIBRATE // Total = number of images
)

// Progress is one progress report of a bank build: Done of Total steps of Stage.
type Progress struct {
	Stage       Stage
	Done, Total int
}

// BankOptions says how to build a bank. The zero value of every field (or a nil
// *BankOptions) means the library's default, which follows the method: Sinkhorn K-means
// with the model's K, the model's sigma, image score = max, seed 0.
type BankOptions struct {
	Scorer Scorer
	// K is the number of prototypes of the Sinkhorn scorer; 0 = the model's (30).
	K int
	// Epsilon is Sinkhorn's entropic regulariser relative to the mean cost; 0 = 0.05.
	Epsilon float32
	// MaxIters caps the K-means iterations; 0 = 50.
	MaxIters int
	// Tol is the K-means relative centroid-shift tolerance; nil = 1e-4 (0 is a valid
	// value: run to MaxIters).
	Tol *float32
	// CoresetRatio is the share of vectors kept by the coreset scorer; 0 = 0.1.
	CoresetRatio float32
	// Sigma is the Gaussian smoothing in pixels; nil, or any negative value as in C, = the
	// model's (0 is a valid value: no smoothing); NaN is refused.
	Sigma *float32
	// ImageScoreMode and TopFraction (0 = 0.1) choose how the image score is drawn.
	ImageScoreMode ImageScoreMode
	TopFraction    float32
	Augment        Augment
	// TargetFPR is the false-positive rate the thresholds aim at; 0 = the model's.
	TargetFPR float32
	// BatchSize is the number of images per encoder call; 0 = 4.
	BatchSize int
	// Seed drives every random choice: the same seed and images give the same bank.
	Seed uint64
	// MaxVectors caps the bank vectors (images x copies x patches); 0 = 4 Mi.
	MaxVectors uint64
	// Tile switches tiling on (C ABI revision 3): the image pixels one encoder input
	// covers along its width (the tile's height follows the encoder input's aspect
	// ratio), e.g. 224 on a 224 model for native resolution. 0 = off, the default: each
	// image is resized whole. A tile larger than an image is refused (ErrInvalidArgument),
	// so are more than 4096 tiles per image (ErrLimitExceeded).
	Tile uint32
	// TileOverlap is the share of a tile that overlaps its neighbour, in [0, 1); 0 = none.
	// Ignored without tiling.
	TileOverlap float32
	// TileLayout chooses one bank for all tiles (TileShared, the zero value) or one per
	// tile position (TilePerPosition). Ignored without tiling.
	TileLayout TileLayout
	// ROI is the region of interest (C ABI revision 4): only patches with a pixel inside
	// it enter the bank, and the bank keeps a copy as the default ROI of every score call
	// (saved with it; read it back with Bank.ROI). nil = the whole image, the default. Its
	// bytes are pinned during the build only.
	ROI *Mask
	// Growable keeps the shots' features in the bank (and its file), so Bank.Add and
	// Bank.Merge can later give the bank built from all the images at once, bit for bit
	// (C ABI revision 5). It costs file size for the Sinkhorn and coreset scorers, nothing
	// for ScorerFull. Tiled banks grow too (a TilePerPosition bank only with images of its
	// one size). false, the default: a small bank that cannot grow.
	Growable bool
	// Progress, if set, is called on the building goroutine after each batch or
	// iteration. It must not call Close on the model; to stop the build, cancel the
	// context given to BuildBank.
	Progress func(Progress)
}

// Float32 returns a pointer to v, for BankOptions.Tol and BankOptions.Sigma.
func Float32(v float32) *float32 { return &v }

func (o *BankOptions) toC(co *C.nexvitad_bank_options) error {
	co.scorer = C.uint32_t(o.Scorer)
	co.image_score_mode = C.uint32_t(o.ImageScoreMode)
	co.augment = C.uint32_t(o.Augment)
	co.seed = C.uint64_t(o.Seed)
	if o.TargetFPR != 0 {
		co.target_fpr = C.float(o.TargetFPR)
	}
	if o.Epsilon != 0 {
		co.epsilon = C.float(o.Epsilon)
	}
	if o.CoresetRatio != 0 {
		co.coreset_ratio = C.float(o.CoresetRatio)
	}
	if o.TopFraction != 0 {
		co.image_score_top_fraction = C.float(o.TopFraction)
	}
	if o.Tol != nil {
		co.tol = C.float(*o.Tol)
	}
	if o.Sigma != nil {
		co.sigma = C.float(*o.Sigma)
	}
	if o.MaxVectors != 0 {
		co.max_vectors = C.uint64_t(o.MaxVectors)
	}
	co.tile = C.uint32_t(o.Tile)
	co.tile_overlap = C.float(o.TileOverlap)
	co.tile_layout = C.uint32_t(o.TileLayout)
	if o.Growable {
		co.growable = 1
	}
	for _, f := range []struct {
		name string
		v    int
		dst  *C.uint32_t
	}{{"BankOptions.K", o.K, &co.k}, {"BankOptions.MaxIters", o.MaxIters, &co.max_iters}, {"BankOptions.BatchSize", o.BatchSize, &co.batch_size}} {
		if f.v == 0 {
			continue
		}
		v, err := toU32(f.name, f.v)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	return nil
}

// Bank is a memory bank of normal features plus its decision thresholds. It is
// immutable and safe for concurrent use; it keeps what it needs of its model, so it
// stays usable after the model is closed. Close releases it.
type Bank struct {
	mu  sync.RWMutex // as Model.mu
	ptr *C.nexvitad_bank
}

func newBank(ptr *C.nexvitad_bank) *Bank {
	b := &Bank{ptr: ptr}
	runtime.SetFinalizer(b, (*Bank).Close) // a safety net for a forgotten Close
	return b
}

// BuildBank builds a memory bank from normal (defect-free) images of the product. Each
// image is read as Raw describes (no copy for RGBA, NRGBA and Gray images).
//
// Cancelling ctx stops the build at its next progress step (after the current batch or
// K-means iteration); the error then matches ErrCancelled and wraps ctx.Err().
func (m *Model) BuildBank(ctx context.Context, images []image.Image, opts *BankOptions) (*Bank, error) {
	raws, err := rawImages(images)
	if err != nil {
		return nil, err
	}
	return m.BuildBankRaw(ctx, raws, opts)
}

// BuildBankRaw is BuildBank for raw pixel buffers.
func (m *Model) BuildBankRaw(ctx context.Context, images []RawImage, opts *BankOptions) (*Bank, error) {
	if ctx == nil {
		return nil, invalidf("ctx is nil")
	}
	if len(images) == 0 {
		return nil, invalidf("no images to build a bank from")
	}
	var co C.nexvitad_bank_options
	co.struct_size = C.sizeof_nexvitad_bank_options
	var cerr *C.char
	if err := statusError(C.nxgo_bank_options_default(&co, &cerr), cerr); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &BankOptions{}
	}
	if err := opts.toC(&co); err != nil {
		return nil, err
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	if opts.ROI != nil {
		if err := opts.ROI.check("BankOptions.ROI"); err != nil {
			return nil, err
		}
		co.roi = opts.ROI.toC(&pin)
	}
	cimgs := make([]C.nexvitad_image, len(images))
	for i := range images {
		if err := images[i].check(fmt.Sprintf("images[%d]", i)); err != nil {
			return nil, err
		}
		cimgs[i] = images[i].toC(&pin)
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Status: StatusCancelled, Message: "context done before the build started", cause: err}
	}
	mp, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()

	state := &buildState{ctx: ctx, progress: opts.Progress}
	h := cgo.NewHandle(state)
	defer h.Delete()
	var out *C.nexvitad_bank
	st := C.nxgo_bank_build(mp, &cimgs[0], C.size_t(len(cimgs)), &co, 1, C.uintptr_t(h), &out, &cerr)
	runtime.KeepAlive(m)
	err = statusError(st, cerr)
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

// LoadBank loads a bank saved by Bank.Save and checks that this model built it (else
// the error matches ErrMismatch).
func (m *Model) LoadBank(path string) (*Bank, error) {
	if err := checkPath("path", path); err != nil {
		return nil, err
	}
	mp, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var out *C.nexvitad_bank
	var cerr *C.char
	if err := statusError(C.nxgo_bank_load(mp, cpath, &out, &cerr), cerr); err != nil {
		return nil, err
	}
	runtime.KeepAlive(m)
	return newBank(out), nil
}

// Save writes the bank to path (a safetensors file). The write is atomic: an existing
// file is replaced only on success.
func (b *Bank) Save(path string) error {
	if err := checkPath("path", path); err != nil {
		return err
	}
	bp, err := b.acquire()
	if err != nil {
		return err
	}
	defer b.mu.RUnlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	err = statusError(C.nxgo_bank_save(bp, cpath, &cerr), cerr)
	runtime.KeepAlive(b)
	return err
}

// BankInfo describes a bank.
type BankInfo struct {
	Scorer         Scorer
	K              int // prototypes asked for (Sinkhorn)
	Dim            int // width of each bank vector
	GridW, GridH   int // patch grid of the bank features
	Shots          int // normal images the bank was built from
	Vectors        int // rows stored
	Sigma          float32
	ImageThreshold float32 // image scores above it are anomalous
	PixelThreshold float32 // map values above it are anomalous
	TargetFPR      float32
	ImageScoreMode ImageScoreMode
	TopFraction    float32
	Augment        Augment
	Converged      bool // Sinkhorn K-means converged within MaxIters
	Iterations     int  // Sinkhorn K-means iterations run
	Seed           uint64
	// Tile and TileH are the tile's width and height in image pixels; 0 for a whole-image
	// bank (no tiling).
	Tile, TileH int
	TileOverlap float32    // 0 without tiling
	TileLayout  TileLayout // TileShared without tiling
	// TileCols and TileRows, and ImageW × ImageH, the one image size the bank scores, are
	// set for TilePerPosition banks only; 0 for others, which score any size.
	TileCols, TileRows int
	ImageW, ImageH     int
	// ROIWidth × ROIHeight is the size of the bank's default region of interest (C ABI
	// revision 4); 0 × 0 = none. Bank.ROI reads it.
	ROIWidth, ROIHeight int
	// Growable reports a bank built with BankOptions.Growable (C ABI revision 5): Bank.Add
	// and Bank.Merge work on it.
	Growable bool
}

// Tiled reports whether the bank was built with tiling.
func (i BankInfo) Tiled() bool { return i.Tile != 0 }

// HasROI reports whether the bank was built with a region of interest, which it applies
// to every score call by default.
func (i BankInfo) HasROI() bool { return i.ROIWidth != 0 && i.ROIHeight != 0 }

// Info describes the bank: scorer, sizes, sigma, thresholds, build settings.
func (b *Bank) Info() (BankInfo, error) {
	bp, err := b.acquire()
	if err != nil {
		return BankInfo{}, err
	}
	defer b.mu.RUnlock()
	var ci C.nexvitad_bank_info
	ci.struct_size = C.sizeof_nexvitad_bank_info
	var cerr *C.char
	if err := statusError(C.nxgo_bank_get_info(bp, &ci, &cerr), cerr); err != nil {
		return BankInfo{}, err
	}
	runtime.KeepAlive(b)
	vectors := uint64(ci.vectors)
	if vectors > math.MaxInt {
		vectors = math.MaxInt
	}
	return BankInfo{
		Scorer:         Scorer(ci.scorer),
		K:              int(ci.k),
		Dim:            int(ci.dim),
		GridW:          int(ci.grid_w),
		GridH:          int(ci.grid_h),
		Shots:          int(ci.shots),
		Vectors:        int(vectors),
		Sigma:          float32(ci.sigma),
		ImageThreshold: float32(ci.image_threshold),
		PixelThreshold: float32(ci.pixel_threshold),
		TargetFPR:      float32(ci.target_fpr),
		ImageScoreMode: ImageScoreMode(ci.image_score_mode),
		TopFraction:    float32(ci.image_score_top_fraction),
		Augment:        Augment(ci.augment),
		Converged:      ci.converged != 0,
		Iterations:     int(ci.iterations),
		Seed:           uint64(ci.seed),
		Tile:           int(ci.tile),
		TileH:          int(ci.tile_h),
		TileOverlap:    float32(ci.tile_overlap),
		TileLayout:     TileLayout(ci.tile_layout),
		TileCols:       int(ci.tile_cols),
		TileRows:       int(ci.tile_rows),
		ImageW:         int(ci.image_width),
		ImageH:         int(ci.image_height),
		ROIWidth:       int(ci.roi_width),
		ROIHeight:      int(ci.roi_height),
		Growable:       ci.growable != 0,
	}, nil
}

// Close releases the bank. It waits for calls in flight, is idempotent, and any later
// use of b returns an error wrapping ErrClosed.
func (b *Bank) Close() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ptr == nil {
		return nil
	}
	var cerr *C.char
	err := statusError(C.nxgo_bank_free(b.ptr, &cerr), cerr)
	b.ptr = nil
	runtime.SetFinalizer(b, nil)
	return err
}

// acquire returns the live handle with b's read lock held; release with b.mu.RUnlock.
func (b *Bank) acquire() (*C.nexvitad_bank, error) {
	if b == nil {
		return nil, invalidf("bank is nil")
	}
	b.mu.RLock()
	if b.ptr == nil {
		b.mu.RUnlock()
		return nil, closedError("bank")
	}
	return b.ptr, nil
}
