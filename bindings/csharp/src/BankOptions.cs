using System;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// How to build a bank (nexvitad_bank_options). A new instance holds the library's
    /// defaults, which follow the method: Sinkhorn K-means with the model's K, the model's
    /// sigma, image score = max, no augmentation, seed 0. The library checks the values when
    /// building and names a bad one in a <see cref="NexVitadException"/> with
    /// <see cref="Status.InvalidArgument"/>.
    /// </summary>
    public sealed class BankOptions
    {
        private nexvitad_bank_options _o;

        /// <summary>Reads the defaults from the library.</summary>
        public BankOptions()
        {
            _o = new nexvitad_bank_options { struct_size = NativeMethods.SizeOf<nexvitad_bank_options>() };
            Errors.Check(NativeMethods.nexvitad_bank_options_default(ref _o));
        }

        /// <summary>How patches are matched against the bank.</summary>
        public Scorer Scorer { get => (Scorer)_o.scorer; set => _o.scorer = (uint)value; }

        /// <summary>Prototypes for the Sinkhorn scorer; null = the model's default (30).</summary>
        public int? K
        {
            get => _o.k == 0 ? (int?)null : (int)_o.k;
            set => _o.k = value == null ? 0u : Positive(value.Value, nameof(K));
        }

        /// <summary>Entropic regulariser of Sinkhorn, relative to the mean cost; &gt; 0.</summary>
        public float Epsilon { get => _o.epsilon; set => _o.epsilon = value; }

        /// <summary>K-means iteration cap; 0 = the default (50), as in C and Go. Setting 0 reads 50.</summary>
        public int MaxIterations { get => (int)_o.max_iters; set => _o.max_iters = CountOrDefault(value, nameof(MaxIterations), o => o.max_iters); }

        /// <summary>K-means relative centroid-shift tolerance; &gt;= 0.</summary>
        public float Tolerance { get => _o.tol; set => _o.tol = value; }

        /// <summary>Share of vectors kept by the coreset scorer, in (0, 1].</summary>
        public float CoresetRatio { get => _o.coreset_ratio; set => _o.coreset_ratio = value; }

        /// <summary>Gaussian smoothing sigma in pixels of the scored image (0 = none); null, or any
        /// negative value as in C, = the model's default; NaN is refused by the library.</summary>
        public float? Sigma
        {
            get => _o.sigma < 0f ? (float?)null : _o.sigma;
            set => _o.sigma = value ?? -1f;
        }

        /// <summary>How the image score is drawn from the anomaly map.</summary>
        public ImageScoreMode ImageScoreMode { get => (ImageScoreMode)_o.image_score_mode; set => _o.image_score_mode = (uint)value; }

        /// <summary>Fraction for <see cref="NexVitad.ImageScoreMode.TopMean"/>, in (0, 1].</summary>
        public float ImageScoreTopFraction { get => _o.image_score_top_fraction; set => _o.image_score_top_fraction = value; }

        /// <summary>Extra copies of each normal image in the bank.</summary>
        public Augment Augment { get => (Augment)_o.augment; set => _o.augment = (uint)value; }

        /// <summary>False-positive rate the thresholds aim at, in (0, 1); null = the model's default.</summary>
        public float? TargetFpr
        {
            get => _o.target_fpr == 0f ? (float?)null : _o.target_fpr;
            set => _o.target_fpr = value ?? 0f;
        }

        /// <summary>Images per encoder call; 0 = the default (4), as in C and Go. Reads back what the
        /// library will use: setting 0 reads 4.</summary>
        public int BatchSize { get => (int)_o.batch_size; set => _o.batch_size = CountOrDefault(value, nameof(BatchSize), o => o.batch_size); }

        /// <summary>Seed of every random choice; the same seed and images give the same bank.</summary>
        public long Seed { get => unchecked((long)_o.seed); set => _o.seed = unchecked((ulong)value); }

        /// <summary>Cap on bank vectors (images x copies x patches), to bound memory.</summary>
        public long MaxVectors
        {
            get => (long)_o.max_vectors;
            set
            {
                if (value <= 0) throw new ArgumentOutOfRangeException(nameof(MaxVectors), value, "must be > 0");
                _o.max_vectors = (ulong)value;
            }
        }

        /// <summary>
        /// Tiling (C ABI revision 3): image pixels one encoder input covers along its width (the
        /// tile's height follows the encoder input's aspect ratio); 0 = off, the default: each
        /// image is resized whole to the encoder input. E.g. 224 on a 224 model = native
        /// resolution. The library refuses a tile larger than an image (<see cref="Status.InvalidArgument"/>)
        /// and more than 4096 tiles per image (<see cref="Status.LimitExceeded"/>).
        /// </summary>
        public int Tile
        {
            get => (int)_o.tile;
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException(nameof(Tile), value, "must be >= 0 (0 = no tiling)");
                _o.tile = (uint)value;
            }
        }

        /// <summary>Share of a tile that overlaps its neighbour, in [0, 1); 0 = none, the default.
        /// Ignored by the library without tiling, but checked here as in C whenever it is set.</summary>
        public float TileOverlap
        {
            get => _o.tile_overlap;
            set
            {
                if (!(value >= 0f && value < 1f)) // NaN fails too
                    throw new ArgumentOutOfRangeException(nameof(TileOverlap), value, "must be in [0, 1)");
                _o.tile_overlap = value;
            }
        }

        /// <summary>One bank for all tiles (<see cref="NexVitad.TileLayout.Shared"/>, the default) or one per
        /// tile position (<see cref="NexVitad.TileLayout.PerPosition"/>: needs images of one size and scores
        /// only that size). Ignored without tiling.</summary>
        public TileLayout TileLayout
        {
            get => (TileLayout)_o.tile_layout;
            set
            {
                if (value != TileLayout.Shared && value != TileLayout.PerPosition)
                    throw new ArgumentOutOfRangeException(nameof(TileLayout), value, "not a TileLayout value");
                _o.tile_layout = (uint)value;
            }
        }

        /// <summary>
        /// Region of interest (C ABI revision 4): only patches with a pixel inside the mask enter the bank,
        /// and the bank keeps a copy as the default ROI of every score call (saved with it; read it back with
        /// <see cref="MemoryBank.GetRoi"/>). null, the default, = the whole image. The mask's bytes are
        /// pinned during <see cref="Model.BuildBank"/> only.
        /// </summary>
        public Mask? Roi { get; set; }

        /// <summary>
        /// A growable bank (C ABI revision 5): keeps its shots' features (in memory and in the saved file), so
        /// <see cref="MemoryBank.Add"/> and <see cref="MemoryBank.Merge"/> can later give the bank built from all
        /// the images at once, bit for bit. Costs file size for the Sinkhorn and coreset scorers, nothing for
        /// <see cref="NexVitad.Scorer.Full"/>. Tiled banks grow too (a <see cref="NexVitad.TileLayout.PerPosition"/>
        /// bank only with images of its one size). false, the default: a small bank that cannot grow.
        /// </summary>
        public bool Growable { get => _o.growable != 0; set => _o.growable = value ? 1u : 0u; }

        /// <summary>0 selects the library's default (the header's "use the default" rule), read
        /// back as the value it stands for; a negative value throws.</summary>
        private static uint CountOrDefault(int value, string name, Func<nexvitad_bank_options, uint> field)
        {
            if (value < 0) throw new ArgumentOutOfRangeException(name, value, "must be >= 0 (0 = the default)");
            if (value > 0) return (uint)value;
            var d = new nexvitad_bank_options { struct_size = NativeMethods.SizeOf<nexvitad_bank_options>() };
            Errors.Check(NativeMethods.nexvitad_bank_options_default(ref d));
            return field(d);
        }

        private static uint Positive(int value, string name)
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(name, value, "must be > 0");
            return (uint)value;
        }

        internal nexvitad_bank_options ToNative()
        {
            return _o;
        }
    }
}
