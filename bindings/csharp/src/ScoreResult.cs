using System;
using System.Buffers;
using System.Collections.Generic;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>Where the time of one scoring call went.</summary>
    public struct ScoreTimings
    {
        /// <summary>Resizing and normalising (batch time split evenly over its images).</summary>
        public TimeSpan Prepare;
        /// <summary>The Hiera encoder.</summary>
        public TimeSpan Hiera;
        /// <summary>The DINOv2 encoder.</summary>
        public TimeSpan Dinov2;
        /// <summary>The fusion head.</summary>
        public TimeSpan Head;
        /// <summary>Matching patches against the bank.</summary>
        public TimeSpan Matching;
        /// <summary>Upsampling and smoothing the map.</summary>
        public TimeSpan UpsampleSmooth;

        /// <summary>The sum of the parts.</summary>
        public TimeSpan Total => Prepare + Hiera + Dinov2 + Head + Matching + UpsampleSmooth;

        internal static TimeSpan Seconds(double s)
        {
            // TimeSpan.FromSeconds rounds to whole milliseconds on .NET Framework and mono.
            return TimeSpan.FromTicks((long)Math.Round(s * TimeSpan.TicksPerSecond));
        }
    }

    /// <summary>
    /// The outcome of scoring one image: its score, the thresholds (the bank's unless
    /// <see cref="ScoreOptions"/> gave others), the decision, the defect regions when scored with
    /// <see cref="ScoreOptions"/> and, unless scored with <c>withMap: false</c>, the anomaly map at the
    /// image's own size.
    /// </summary>
    /// <remarks>
    /// The map lives in an array rented from <see cref="ArrayPool{T}.Shared"/>; Dispose returns it,
    /// after which <see cref="Map"/> and the other map accessors throw
    /// <see cref="ObjectDisposedException"/> (the scalar properties stay readable). Not disposing
    /// is safe, it only leaves the array to the garbage collector. Do not dispose while another
    /// thread still reads <see cref="Map"/>.
    /// </remarks>
    public sealed class ScoreResult : IDisposable
    {
        private static readonly Region[] s_noRegions = new Region[0];
        private float[] _map;
        private readonly bool _hasMap;

        internal ScoreResult(ref nexvitad_result r, float[] map, Region[] regions = null)
        {
            ImageScore = r.image_score;
            ImageThreshold = r.image_threshold;
            PixelThreshold = r.pixel_threshold;
            IsAnomalous = r.is_anomalous != 0;
            Width = (int)r.width;
            Height = (int)r.height;
            Timings = new ScoreTimings
            {
                Prepare = ScoreTimings.Seconds(r.prepare_s),
                Hiera = ScoreTimings.Seconds(r.hiera_s),
                Dinov2 = ScoreTimings.Seconds(r.dinov2_s),
                Head = ScoreTimings.Seconds(r.head_s),
                Matching = ScoreTimings.Seconds(r.matching_s),
                UpsampleSmooth = ScoreTimings.Seconds(r.upsample_smooth_s),
            };
            ThresholdSource = (ThresholdSource)r.threshold_flags;
            RoiSource = (RoiSource)r.roi_source;
            Regions = regions ?? s_noRegions;
            RegionCount = (long)r.region_count;
            _map = map;
            _hasMap = map != null;
        }

        /// <summary>The image's anomaly score (the map's max, or its top-fraction mean).</summary>
        public float ImageScore { get; }
        /// <summary>The image threshold decided at: the bank's, or <see cref="ScoreOptions.ImageThreshold"/>
        /// (see <see cref="ThresholdSource"/>).</summary>
        public float ImageThreshold { get; }
        /// <summary>The pixel threshold: map values above it form the defect mask and the <see cref="Regions"/>.
        /// The bank's, or <see cref="ScoreOptions.PixelThreshold"/> (see <see cref="ThresholdSource"/>).</summary>
        public float PixelThreshold { get; }
        /// <summary>Which of <see cref="ImageThreshold"/> and <see cref="PixelThreshold"/> were the caller's
        /// (C ABI revision 3); <see cref="NexVitad.ThresholdSource.Bank"/> = both the bank's.</summary>
        public ThresholdSource ThresholdSource { get; }
        /// <summary>Which region of interest the map, score and regions were confined to (C ABI revision 4):
        /// the bank's, the caller's (<see cref="ScoreOptions.Roi"/>) or none (the whole image).</summary>
        public RoiSource RoiSource { get; }
        /// <summary>The defect regions, highest peak first, when scored with <see cref="ScoreOptions"/>
        /// (<see cref="ScoreOptions.FindRegions"/>); empty otherwise and when the image has none. Stays
        /// readable after Dispose.</summary>
        public IReadOnlyList<Region> Regions { get; }
        /// <summary>How many defect regions the image has (of at least <see cref="ScoreOptions.MinRegionArea"/>
        /// pixels) when scored with <see cref="ScoreOptions"/>: with <see cref="ScoreOptions.FindRegions"/> it
        /// equals <see cref="Regions"/>.Count; from
        /// <see cref="Model.ScoreBatch(MemoryBank, IReadOnlyList{ImageBuffer}, ScoreOptions, bool)"/> (C ABI
        /// revision 5) it is the count alone, <see cref="Regions"/> staying empty. 0 when scored without
        /// <see cref="ScoreOptions"/> or with FindRegions false.</summary>
        public long RegionCount { get; }
        /// <summary><see cref="ImageScore"/> &gt; <see cref="ImageThreshold"/>.</summary>
        public bool IsAnomalous { get; }
        /// <summary>Width of the anomaly map (= the image's).</summary>
        public int Width { get; }
        /// <summary>Height of the anomaly map (= the image's).</summary>
        public int Height { get; }
        /// <summary>Where the time went.</summary>
        public ScoreTimings Timings { get; }

        /// <summary>Whether the result carries an anomaly map (false when scored with withMap: false).</summary>
        public bool HasMap => _hasMap;

        /// <summary>True once <see cref="Dispose"/> has been called.</summary>
        public bool IsDisposed => _hasMap && _map == null;

        /// <summary>The anomaly map, row-major, <see cref="Width"/> x <see cref="Height"/> values.</summary>
        /// <exception cref="ObjectDisposedException">After Dispose.</exception>
        /// <exception cref="InvalidOperationException">Scored with withMap: false.</exception>
        public ReadOnlySpan<float> Map => new ReadOnlySpan<float>(MapArray(), 0, Width * Height);

        /// <summary>The map value at column <paramref name="x"/>, row <paramref name="y"/>.</summary>
        public float this[int x, int y]
        {
            get
            {
                if ((uint)x >= (uint)Width) throw new ArgumentOutOfRangeException(nameof(x));
                if ((uint)y >= (uint)Height) throw new ArgumentOutOfRangeException(nameof(y));
                return MapArray()[(long)y * Width + x];
            }
        }

        /// <summary>A new array holding the map (outlives Dispose).</summary>
        public float[] ToArray()
        {
            return Map.ToArray();
        }

        /// <summary>Returns the map's array to the pool. Idempotent.</summary>
        public void Dispose()
        {
            float[] map = _map;
            _map = null;
            if (map != null)
                ArrayPool<float>.Shared.Return(map);
        }

        private float[] MapArray()
        {
            float[] map = _map;
            if (map != null)
                return map;
            if (_hasMap)
                throw new ObjectDisposedException(nameof(ScoreResult));
            throw new InvalidOperationException("this result was scored with withMap: false and has no anomaly map");
        }
    }
}
