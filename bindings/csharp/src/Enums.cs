using System;

namespace NexVitad
{
    /// <summary>Pixel layouts, 8 bits per channel (nexvitad_pixel_format).</summary>
    public enum PixelFormat
    {
        /// <summary>One byte per pixel, gray.</summary>
        Gray8 = 0,
        /// <summary>Three bytes per pixel, R G B.</summary>
        Rgb8 = 1,
        /// <summary>Three bytes per pixel, B G R (OpenCV's and most Windows bitmaps' order).</summary>
        Bgr8 = 2,
        /// <summary>Four bytes per pixel, R G B A (alpha ignored).</summary>
        Rgba8 = 3,
        /// <summary>Four bytes per pixel, B G R A (alpha ignored; System.Drawing's Format32bppArgb in memory).</summary>
        Bgra8 = 4,
    }

    /// <summary>How patches are matched against the bank (nexvitad_scorer).</summary>
    public enum Scorer
    {
        /// <summary>K prototypes from Sinkhorn K-means (the method's choice, default).</summary>
        Sinkhorn = 0,
        /// <summary>Every normal patch vector (exact nearest neighbour; largest bank).</summary>
        Full = 1,
        /// <summary>A greedy-coreset subsample of the normal patch vectors.</summary>
        Coreset = 2,
    }

    /// <summary>How the image score is drawn from the anomaly map (nexvitad_image_score_mode).</summary>
    public enum ImageScoreMode
    {
        /// <summary>The map's maximum (default).</summary>
        Max = 0,
        /// <summary>Mean of the top <see cref="BankOptions.ImageScoreTopFraction"/> of the map's values.</summary>
        TopMean = 1,
    }

    /// <summary>Extra copies of each normal image in the bank (nexvitad_augment bits).</summary>
    [Flags]
    public enum Augment
    {
        /// <summary>No augmentation.</summary>
        None = 0,
        /// <summary>Mirror left-right.</summary>
        HorizontalFlip = 1,
        /// <summary>Mirror top-bottom.</summary>
        VerticalFlip = 2,
        /// <summary>Rotations by 90, 180 and 270 degrees (needs a square encoder input).</summary>
        Rotate90 = 4,
    }

    /// <summary>Where a tiled bank keeps its normal features (nexvitad_tile_layout, C ABI revision 3).</summary>
    public enum TileLayout
    {
        /// <summary>One bank for the tiles of every position (textures, webs, surfaces); the default.</summary>
        Shared = 0,
        /// <summary>One bank per tile position (aligned objects): built from images of one size, it
        /// scores only images of that size.</summary>
        PerPosition = 1,
    }

    /// <summary>Which of a result's thresholds came from the caller's <see cref="ScoreOptions"/> rather than
    /// the bank (nexvitad_threshold_source bits of nexvitad_result.threshold_flags, C ABI revision 3).</summary>
    [Flags]
    public enum ThresholdSource
    {
        /// <summary>Both thresholds are the bank's.</summary>
        Bank = 0,
        /// <summary><see cref="ScoreResult.ImageThreshold"/> is <see cref="ScoreOptions.ImageThreshold"/>.</summary>
        ImageFromCaller = 1,
        /// <summary><see cref="ScoreResult.PixelThreshold"/> is <see cref="ScoreOptions.PixelThreshold"/>.</summary>
        PixelFromCaller = 2,
    }

    /// <summary>Which region of interest a result was confined to (nexvitad_roi_source, C ABI revision 4).</summary>
    public enum RoiSource
    {
        /// <summary>No region of interest: the whole image.</summary>
        None = 0,
        /// <summary>The bank's default ROI (<see cref="BankOptions.Roi"/> when it was built).</summary>
        FromBank = 1,
        /// <summary>The caller's <see cref="ScoreOptions.Roi"/>.</summary>
        FromCaller = 2,
    }

    /// <summary>Log message levels (nexvitad_log_level).</summary>
    public enum LogLevel
    {
        /// <summary>Something worth knowing (a model opened, a bank built or saved).</summary>
        Info = 1,
        /// <summary>Something that worked but may not be what was wanted.</summary>
        Warn = 2,
    }

    internal static class PixelFormats
    {
        /// <summary>Bytes per pixel; throws for a value that is not a <see cref="PixelFormat"/>.</summary>
        public static int BytesPerPixel(PixelFormat format, string paramName)
        {
            switch (format)
            {
                case PixelFormat.Gray8: return 1;
                case PixelFormat.Rgb8:
                case PixelFormat.Bgr8: return 3;
                case PixelFormat.Rgba8:
                case PixelFormat.Bgra8: return 4;
                default:
                    throw new ArgumentOutOfRangeException(paramName, format, "not a PixelFormat value");
            }
        }
    }
}
