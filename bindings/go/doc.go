// Package nexvitad is the Go binding of libnexvitad, a few-shot industrial defect
// detector (NexViTAD): open a model folder, build a memory bank from a few images of
// good parts (or load a saved one), then score images for anomalies.
//
//	model, err := nexvitad.Open("models/tiny", nil)
//	if err != nil { ... }
//	defer model.Close()
//	bank, err := model.LoadBank("part.bank")
//	if err != nil { ... }
//	defer bank.Close()
//	res, err := model.Score(bank, img) // img is any image.Image
//	fmt.Println(res.Score, res.Threshold, res.Anomalous)
//
// Models and banks are safe for concurrent use by many goroutines. Close releases them;
// it waits for calls in flight and is idempotent, and later calls fail with an error
// wrapping ErrClosed. A finalizer frees a forgotten handle, but only as a safety net.
//
// Every failure is an *Error carrying the library's Status and message; it matches the
// status's sentinel with errors.Is (ErrInvalidArgument, ErrMismatch, ErrCancelled, ...).
//
// ScoreWith (C ABI revision 3) decides at caller image and pixel thresholds and returns
// the defect regions of the map (Result.Regions, highest peak first). ScoreBatchWith (C ABI
// revision 5) applies such options to every image of a batch and counts each image's
// regions (Result.RegionCount).
//
// Regions of interest (C ABI revision 4): a Mask in BankOptions.ROI becomes the bank's
// default ROI; ScoreOptions.ROI replaces it for one call and ScoreOptions.IgnoreBankROI
// switches it off; Result.ROISource says which applied. Bank.Recalibrated returns a new
// bank with thresholds at another target false-positive rate.
//
// Banks that grow (C ABI revision 5): a bank built with BankOptions.Growable keeps its
// shots, so Bank.Add returns a new bank with more good images and Bank.Merge a new bank
// from two banks' images; either equals, bit for bit, the bank built from all the images
// at once. Tiled banks grow too.
//
// Options.TileBatch (C ABI revision 6) sets how many tiles of tiled images go through the
// encoders per call when scoring; 0 is the execution provider's default.
// Options.ParallelEncoders runs the two encoders side by side on two threads.
//
// Training's feature cache (C ABI revision 7): TrainOptions.CacheDir and CacheMem place the
// file of every training image's encoder outputs and bound the memory its feature sets
// take; TrainResult reports its size and what was encoded or reused.
//
// BuildBank, Bank.Add and Bank.Merge take a context.Context: cancelling it stops the call
// at its next progress step, through the C library's progress callback.
//
// The package wraps only the C API (nexvitad.h) and links libnexvitad through cgo and
// pkg-config; see README.md for building.
package nexvitad
