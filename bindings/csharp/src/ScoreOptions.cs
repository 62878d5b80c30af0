using System;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// Per-call scoring choices (nexvitad_score_options, C ABI revision 3) for
    /// <see cref="Model.Score(MemoryBank, ImageBuffer, ScoreOptions, bool)"/> and
    /// <see cref="MemoryBank.Score(ImageBuffer, ScoreOptions, bool)"/> (and, for every image of a batch,
    /// <see cref="Model.ScoreBatch(MemoryBank, System.Collections.Generic.IReadOnlyList{ImageBuffer}, ScoreOptions, bool)"/>):
    /// decide at another image
    /// threshold, draw the defect regions at another pixel threshold, and find the regions
    /// (<see cref="ScoreResult.Regions"/>). A new instance holds the library's defaults: the
    /// bank's thresholds, every region kept, regions found.
    /// </summary>
    public sealed class ScoreOptions
    {
        private nexvitad_score_options _o;
        private int _regionCapacity = 64;

        /// <summary>Reads the defaults from the library.</summary>
        public ScoreOptions()
        {
            _o = new nexvitad_score_options { struct_size = NativeMethods.SizeOf<nexvitad_score_options>() };
            Errors.Check(NativeMethods.nexvitad_score_options_default(ref _o));
        }

        /// <summary>Decide at this image threshold instead of the bank's; null (the default) = the bank's.
        /// Finite and &gt;= 0: 0 is a real setting (every image with a positive score is anomalous).</summary>
        /// <exception cref="ArgumentOutOfRangeException">Negative, NaN or infinite (the library refuses NaN and
        /// +inf and reads a negative value as "the bank's", which is null here).</exception>
        public float? ImageThreshold
        {
            get => _o.image_threshold < 0f ? (float?)null : _o.image_threshold;
            set => _o.image_threshold = Threshold(value, nameof(ImageThreshold));
        }

        /// <summary>Draw the defect regions (map values strictly above it) at this pixel threshold instead of
        /// the bank's; null (the default) = the bank's. The same rules as <see cref="ImageThreshold"/>.</summary>
        /// <exception cref="ArgumentOutOfRangeException">Negative, NaN or infinite.</exception>
        public float? PixelThreshold
        {
            get => _o.pixel_threshold < 0f ? (float?)null : _o.pixel_threshold;
            set => _o.pixel_threshold = Threshold(value, nameof(PixelThreshold));
        }

        /// <summary>Smallest region kept, in pixels; 0 (the default) keeps every region.</summary>
        /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
        public long MinRegionArea
        {
            get => (long)_o.min_region_area;
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException(nameof(MinRegionArea), value, "must be >= 0");
                _o.min_region_area = (ulong)value;
            }
        }

        /// <summary>Find the defect regions (true, the default); false leaves <see cref="ScoreResult.Regions"/> empty.</summary>
        public bool FindRegions { get; set; } = true;

        /// <summary>Room for this many regions in the first call (default 64). A result with more scores the
        /// image a second time with room for all of them: the C ABI reports the count, like snprintf, and
        /// keeps nothing between calls. The result is the same either way.</summary>
        /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
        public int RegionCapacity
        {
            get => _regionCapacity;
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException(nameof(RegionCapacity), value, "must be >= 0");
                _regionCapacity = value;
            }
        }

        /// <summary>Region of interest for this call (C ABI revision 4), replacing the bank's default: map
        /// pixels outside are 0, and the image score and regions come from inside
        /// (<see cref="ScoreResult.RoiSource"/> is <see cref="NexVitad.RoiSource.FromCaller"/>). null, the
        /// default, = the bank's ROI, if it has one. Pinned during the score call only.</summary>
        public Mask? Roi { get; set; }

        /// <summary>true: score the whole image even if the bank has a default ROI (when <see cref="Roi"/> is
        /// null; <see cref="ScoreResult.RoiSource"/> is then <see cref="NexVitad.RoiSource.None"/>). false, the
        /// default: use the bank's.</summary>
        public bool IgnoreBankRoi
        {
            get => _o.ignore_bank_roi != 0;
            set => _o.ignore_bank_roi = value ? 1u : 0u;
        }

        private static float Threshold(float? value, string name)
        {
            if (value == null)
                return -1f;
            float v = value.Value;
            if (!(v >= 0f) || float.IsInfinity(v)) // NaN fails the first test
                throw new ArgumentOutOfRangeException(name, v, "must be finite and >= 0 (null = the bank's)");
            return v;
        }

        internal nexvitad_score_options ToNative()
        {
            return _o;
        }
    }

    /// <summary>
    /// One defect region (nexvitad_region, C ABI revision 3): an 8-connected piece of the anomaly map
    /// strictly above the pixel threshold. Coordinates are image pixels.
    /// </summary>
    public readonly struct Region : IEquatable<Region>
    {
        internal Region(ref nexvitad_region r)
        {
            X = (int)r.x;
            Y = (int)r.y;
            Width = (int)r.width;
            Height = (int)r.height;
            Area = (long)r.area;
            CentroidX = r.centroid_x;
            CentroidY = r.centroid_y;
            Peak = r.peak;
            Mean = r.mean;
        }

        /// <summary>Bounding box: left edge.</summary>
        public int X { get; }
        /// <summary>Bounding box: top edge.</summary>
        public int Y { get; }
        /// <summary>Bounding box: width.</summary>
        public int Width { get; }
        /// <summary>Bounding box: height.</summary>
        public int Height { get; }
        /// <summary>Pixels in the region.</summary>
        public long Area { get; }
        /// <summary>Centroid x (pixel centres: the top-left pixel's centre is 0).</summary>
        public float CentroidX { get; }
        /// <summary>Centroid y.</summary>
        public float CentroidY { get; }
        /// <summary>Highest map value in the region.</summary>
        public float Peak { get; }
        /// <summary>Mean map value over the region.</summary>
        public float Mean { get; }

        /// <summary>Field by field; floats compared by their bits (so NaN equals NaN, -0 differs from 0).</summary>
        public bool Equals(Region o)
        {
            return X == o.X && Y == o.Y && Width == o.Width && Height == o.Height && Area == o.Area &&
                Bits(CentroidX) == Bits(o.CentroidX) && Bits(CentroidY) == Bits(o.CentroidY) &&
                Bits(Peak) == Bits(o.Peak) && Bits(Mean) == Bits(o.Mean);
        }

        /// <inheritdoc/>
        public override bool Equals(object obj) { return obj is Region && Equals((Region)obj); }

        /// <inheritdoc/>
        public override int GetHashCode()
        {
            unchecked { return ((X * 397 ^ Y) * 397 ^ Width) * 397 ^ Height ^ (int)Bits(Peak); }
        }

        /// <summary>"WxH at (X, Y), area A, peak P".</summary>
        public override string ToString()
        {
            return Width + "x" + Height + " at (" + X + ", " + Y + "), area " + Area + ", peak " + Peak;
        }

        private static uint Bits(float f) { return BitConverter.ToUInt32(BitConverter.GetBytes(f), 0); }
    }
}
