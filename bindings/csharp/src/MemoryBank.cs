using System;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// A memory bank of normal patch features and its decision thresholds, from
    /// <see cref="Model.BuildBank"/> or <see cref="Model.LoadBank"/>. Immutable and thread-safe.
    /// It keeps the native model it came from alive, so it may outlive the <see cref="Model"/>
    /// object for <see cref="Save"/> and <see cref="Info"/>.
    /// </summary>
    public sealed class MemoryBank : IDisposable
    {
        private readonly BankHandle _handle;
        private BankInfo _info;

        internal MemoryBank(BankHandle handle)
        {
            _handle = handle;
        }

        internal BankHandle Handle
        {
            get
            {
                if (_handle.IsClosed)
                    throw new ObjectDisposedException(nameof(MemoryBank));
                return _handle;
            }
        }

        /// <summary>True once <see cref="Dispose"/> has been called.</summary>
        public bool IsDisposed => _handle.IsClosed;

        /// <summary>What the bank holds: scorer, sizes, thresholds, build settings.</summary>
        public BankInfo Info
        {
            get
            {
                BankHandle h = Handle;
                if (_info == null)
                {
                    var i = new nexvitad_bank_info { struct_size = NativeMethods.SizeOf<nexvitad_bank_info>() };
                    Errors.Check(NativeMethods.nexvitad_bank_get_info(h, ref i));
                    _info = new BankInfo(ref i);
                }
                return _info;
            }
        }

        /// <summary>Saves the bank (a safetensors file) atomically: an existing file is replaced only on success.</summary>
        /// <exception cref="NexVitadException">Io (cannot write).</exception>
        public void Save(string path)
        {
            byte[] p = Utf8.Path(path, nameof(path));
            Errors.Check(NativeMethods.nexvitad_bank_save(Handle, p));
        }

        /// <summary>Releases the native bank (once; later calls do nothing).</summary>
        public void Dispose()
        {
            _handle.Dispose();
        }
    }

    /// <summary>What a bank holds (nexvitad_bank_info).</summary>
    public sealed class BankInfo
    {
        internal BankInfo(ref nexvitad_bank_info i)
        {
            Scorer = (Scorer)i.scorer;
            K = (int)i.k;
            Dim = (int)i.dim;
            GridWidth = (int)i.grid_w;
            GridHeight = (int)i.grid_h;
            Shots = (int)i.shots;
            Vectors = (long)i.vectors;
            Sigma = i.sigma;
            ImageThreshold = i.image_threshold;
            PixelThreshold = i.pixel_threshold;
            TargetFpr = i.target_fpr;
            ImageScoreMode = (ImageScoreMode)i.image_score_mode;
            ImageScoreTopFraction = i.image_score_top_fraction;
            Augment = (Augment)i.augment;
            Converged = i.converged != 0;
            Iterations = (int)i.iterations;
            Seed = unchecked((long)i.seed);
        }

        /// <summary>How patches are matched.</summary>
        public Scorer Scorer { get; }
        /// <summary>Prototypes asked for (Sinkhorn scorer).</summary>
        public int K { get; }
        /// <summary>Width of each bank vector.</summary>
        public int Dim { get; }
        /// <summary>Patch grid width of the bank features.</summary>
        public int GridWidth { get; }
        /// <summary>Patch grid height of the bank features.</summary>
        public int GridHeight { get; }
        /// <summary>Number of normal images the bank was built from.</summary>
        public int Shots { get; }
        /// <summary>Rows stored in the bank.</summary>
        public long Vectors { get; }
        /// <summary>Gaussian smoothing sigma in pixels.</summary>
        public float Sigma { get; }
        /// <summary>Image scores above this are anomalous.</summary>
        public float ImageThreshold { get; }
        /// <summary>Pixels scoring above this are anomalous.</summary>
        public float PixelThreshold { get; }
        /// <summary>False-positive rate the thresholds aim at.</summary>
        public float TargetFpr { get; }
        /// <summary>How the image score is drawn from the map.</summary>
        public ImageScoreMode ImageScoreMode { get; }
        /// <summary>Fraction for TopMean (0 for Max).</summary>
        public float ImageScoreTopFraction { get; }
        /// <summary>Augmentation used when building.</summary>
        public Augment Augment { get; }
        /// <summary>Whether Sinkhorn K-means converged within its iteration cap (false for other scorers).</summary>
        public bool Converged { get; }
        /// <summary>Sinkhorn K-means iterations run (0 for other scorers).</summary>
        public int Iterations { get; }
        /// <summary>Seed the bank was built with.</summary>
        public long Seed { get; }
    }
}
