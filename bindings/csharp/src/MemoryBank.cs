using System;
using System.Buffers;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// A memory bank of normal patch features and its decision thresholds, from
    /// <see cref="Model.BuildBank"/> or <see cref="Model.LoadBank"/>. Immutable and thread-safe.
    /// It keeps the native model it came from alive, so it may outlive the <see cref="Model"/>
    /// object: <see cref="Score(ImageBuffer, bool)"/>, <see cref="Save"/> and <see cref="Info"/>
    /// work after the model was disposed (dispose the two in any order).
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

        /// <summary>
        /// Scores one image with the model this bank was built or loaded with (nexvitad_score
        /// with a NULL model, C ABI revision 2); works after that <see cref="Model"/> was disposed.
        /// The result equals <see cref="Model.Score(MemoryBank, ImageBuffer, bool)"/>.
        /// </summary>
        /// <exception cref="ObjectDisposedException">The bank was disposed.</exception>
        /// <exception cref="NexVitadException">LimitExceeded, Runtime.</exception>
        public unsafe ScoreResult Score(ImageBuffer image, bool withMap = true)
        {
            if (image == null)
                throw new ArgumentNullException(nameof(image));
            BankHandle bank = Handle;
            var result = new nexvitad_result { struct_size = NativeMethods.SizeOf<nexvitad_result>() };
            nexvitad_image native;
            using (image.Pin(out native))
            {
                if (!withMap)
                {
                    Errors.Check(NativeMethods.nexvitad_score(IntPtr.Zero, bank, ref native, IntPtr.Zero, UIntPtr.Zero, ref result));
                    return new ScoreResult(ref result, null);
                }
                int len = Model.MapLength(image.Width, image.Height);
                float[] map = System.Buffers.ArrayPool<float>.Shared.Rent(len);
                try
                {
                    fixed (float* m = map)
                        Errors.Check(NativeMethods.nexvitad_score(IntPtr.Zero, bank, ref native, (IntPtr)m, (UIntPtr)(uint)len, ref result));
                }
                catch
                {
                    System.Buffers.ArrayPool<float>.Shared.Return(map);
                    throw;
                }
                return new ScoreResult(ref result, map);
            }
        }

        /// <summary>
        /// As <see cref="Score(ImageBuffer, bool)"/>, with per-call thresholds and defect regions
        /// (nexvitad_score_with_options with a NULL model, C ABI revision 3). The result equals
        /// <see cref="Model.Score(MemoryBank, ImageBuffer, ScoreOptions, bool)"/>.
        /// </summary>
        /// <exception cref="ObjectDisposedException">The bank was disposed.</exception>
        /// <exception cref="NexVitadException">InvalidArgument, LimitExceeded, Runtime.</exception>
        public ScoreResult Score(ImageBuffer image, ScoreOptions options, bool withMap = true)
        {
            if (image == null)
                throw new ArgumentNullException(nameof(image));
            if (options == null)
                throw new ArgumentNullException(nameof(options));
            BankHandle bank = Handle;
            nexvitad_image native;
            using (image.Pin(out native))
                return Model.ScoreWithOptions(null, bank, ref native, image.Width, image.Height, options, withMap);
        }

        /// <summary>
        /// The bank's default region of interest (nexvitad_bank_get_roi, C ABI revision 4):
        /// <see cref="BankInfo.RoiWidth"/> x <see cref="BankInfo.RoiHeight"/> bytes, row-major, 1 = inspect and
        /// 0 = ignore; null when the bank was built without one. A new array each call.
        /// </summary>
        /// <exception cref="ObjectDisposedException">The bank was disposed.</exception>
        public byte[] GetRoi()
        {
            BankHandle h = Handle;
            BankInfo info = Info;
            if (!info.HasRoi)
                return null;
            var mask = new byte[checked(info.RoiWidth * info.RoiHeight)];
            Errors.Check(NativeMethods.nexvitad_bank_get_roi(h, mask, (UIntPtr)(uint)mask.Length));
            return mask;
        }

        /// <summary>
        /// A new bank whose thresholds aim at another false-positive rate (nexvitad_bank_recalibrate, C ABI
        /// revision 4), computed from the normal-image scores the bank stored when it was built: nothing is
        /// re-encoded. Same model, vectors and ROI; this bank is unchanged (threads scoring with it are
        /// unaffected). Dispose the new bank when done; <see cref="Save"/> it to keep it.
        /// </summary>
        /// <param name="targetFpr">The false-positive rate, in (0, 1).</param>
        /// <exception cref="ObjectDisposedException">The bank was disposed.</exception>
        /// <exception cref="NexVitadException">InvalidArgument: <paramref name="targetFpr"/> outside (0, 1) or NaN,
        /// or a bank saved before banks stored their pixel-score tail (rebuild it).</exception>
        public MemoryBank Recalibrated(float targetFpr)
        {
            BankHandle bank = null;
            try
            {
                Errors.Check(NativeMethods.nexvitad_bank_recalibrate(Handle, targetFpr, out bank));
                return new MemoryBank(bank);
            }
            catch
            {
                bank?.Dispose();
                throw;
            }
        }

        /// <summary>
        /// A new bank: this one with more good images (nexvitad_bank_add, C ABI revision 5), fitted and
        /// calibrated again over all its images, so it equals bit for bit the bank <see cref="Model.BuildBank"/>
        /// makes from all of them at once with the same options. The new images get this bank's augmentation and
        /// region of interest and are encoded with the bank's own model (which may have been disposed). This bank
        /// is unchanged (threads scoring with it are unaffected). Dispose the new bank when done; <see cref="Save"/>
        /// it to keep it.
        /// </summary>
        /// <param name="images">At least one image; any sizes and formats mixed.</param>
        /// <param name="progress">Receives the overall fraction done, 0..1, on the calling thread (encoding the new
        /// images, clustering and calibration over all of them each take a third).</param>
        /// <param name="cancellationToken">Cancels at the next progress step.</param>
        /// <exception cref="ObjectDisposedException">The bank was disposed.</exception>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        /// <exception cref="NexVitadException">InvalidArgument (a bank built without <see cref="BankOptions.Growable"/>,
        /// a bad image, an image of another size than a per-position tile bank's), LimitExceeded (more rows than <see cref="BankOptions.MaxVectors"/>), Runtime.</exception>
        /// <remarks>An exception thrown by <paramref name="progress"/> cancels the call and is rethrown here.</remarks>
        public MemoryBank Add(IEnumerable<ImageBuffer> images, IProgress<float> progress = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (images == null)
                throw new ArgumentNullException(nameof(images));
            var list = new List<ImageBuffer>(images);
            if (list.Count == 0)
                throw new ArgumentException("adding to a bank needs at least one image", nameof(images));
            for (int i = 0; i < list.Count; i++)
                if (list[i] == null)
                    throw new ArgumentException("images[" + i + "] is null", nameof(images));
            BankHandle bank = Handle;
            cancellationToken.ThrowIfCancellationRequested();
            var natives = new nexvitad_image[list.Count];
            var pins = new MemoryHandle[list.Count];
            try
            {
                for (int i = 0; i < list.Count; i++)
                    pins[i] = list[i].Pin(out natives[i]);
                return Grow(progress, cancellationToken, Model.OnProgressDelegate,
                    (ProgressCallback cb, IntPtr user, out BankHandle o) =>
                        NativeMethods.nexvitad_bank_add(bank, natives, (UIntPtr)(uint)natives.Length, cb, user, out o));
            }
            finally
            {
                foreach (MemoryHandle pin in pins)
                    pin.Dispose();
            }
        }

        /// <summary>
        /// A new bank from this bank's images followed by <paramref name="other"/>'s (nexvitad_bank_merge, C ABI
        /// revision 5), fitted and calibrated again: bit for bit the bank <see cref="Model.BuildBank"/> makes from
        /// all of them at once. Both banks must be growable, come from the same model and agree on every setting that
        /// shapes a bank (scorer, K, sigma, image score, augmentation, seed, target FPR, Sinkhorn and coreset
        /// parameters, region of interest, feature grid, tiling); the new bank scores with this bank's model. Both
        /// banks are unchanged.
        /// </summary>
        /// <param name="other">The second bank (may be this one).</param>
        /// <param name="progress">Receives the overall fraction done, 0..1 (clustering, then calibration: half each).</param>
        /// <param name="cancellationToken">Cancels at the next progress step.</param>
        /// <exception cref="ObjectDisposedException">Either bank was disposed.</exception>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        /// <exception cref="NexVitadException">Mismatch (banks of other models, or a differing setting, named in
        /// the message), InvalidArgument (a bank that is not growable), LimitExceeded.</exception>
        /// <remarks>An exception thrown by <paramref name="progress"/> cancels the call and is rethrown here.</remarks>
        public MemoryBank Merge(MemoryBank other, IProgress<float> progress = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (other == null)
                throw new ArgumentNullException(nameof(other));
            BankHandle a = Handle;
            BankHandle b = other.Handle;
            cancellationToken.ThrowIfCancellationRequested();
            return Grow(progress, cancellationToken, s_onMergeProgress,
                (ProgressCallback cb, IntPtr user, out BankHandle o) => NativeMethods.nexvitad_bank_merge(a, b, cb, user, out o));
        }

        /// <summary>
        /// Runs a native call that makes a new bank with a progress callback (as <see cref="Model.BuildBank"/> does):
        /// the callback state behind a GCHandle, an exception from <paramref name="progress"/> rethrown, Cancelled
        /// turned into <see cref="OperationCanceledException"/>, the new handle owned or released.
        /// </summary>
        private static MemoryBank Grow(IProgress<float> progress, CancellationToken cancellationToken, ProgressCallback onProgress,
            NewBankCall call)
        {
            var state = new CallbackState<float>(progress, cancellationToken);
            bool wantCallback = progress != null || cancellationToken.CanBeCanceled;
            GCHandle user = GCHandle.Alloc(state);
            BankHandle bank = null;
            try
            {
                // The callbacks are static fields, so the delegate (and its native thunk) outlives the call.
                ProgressCallback cb = wantCallback ? onProgress : null;
                Status s = call(cb, wantCallback ? GCHandle.ToIntPtr(user) : IntPtr.Zero, out bank);
                GC.KeepAlive(cb);
                if (state.Error != null)
                    state.Error.Throw();
                if (s == Status.Cancelled)
                    throw new OperationCanceledException(Utf8.FromNative(NativeMethods.nexvitad_last_error()), cancellationToken);
                Errors.Check(s);
                return new MemoryBank(bank);
            }
            catch
            {
                bank?.Dispose();
                throw;
            }
            finally
            {
                user.Free();
            }
        }

        /// <summary>nexvitad_bank_add or nexvitad_bank_merge with its banks and images bound.</summary>
        private delegate Status NewBankCall(ProgressCallback cb, IntPtr user, out BankHandle bank);

        private static readonly ProgressCallback s_onMergeProgress = OnMergeProgress;

        /// <summary>Merging encodes nothing: clustering and calibration take half the fraction each.</summary>
        private static int OnMergeProgress(IntPtr user, int stage, UIntPtr done, UIntPtr total) =>
            CallbackState<float>.Report(user, () =>
            {
                double t = total.ToUInt64();
                double part = t == 0 ? 1.0 : Math.Min(1.0, done.ToUInt64() / t);
                return (float)((Math.Min(Math.Max(stage, 1), 2) - 1 + part) / 2.0);
            });

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
            Tile = (int)i.tile;
            TileHeight = (int)i.tile_h;
            TileOverlap = i.tile_overlap;
            TileLayout = (TileLayout)i.tile_layout;
            TileColumns = (int)i.tile_cols;
            TileRows = (int)i.tile_rows;
            ImageWidth = (int)i.image_width;
            ImageHeight = (int)i.image_height;
            RoiWidth = (int)i.roi_width;
            RoiHeight = (int)i.roi_height;
            Growable = i.growable != 0;
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
        /// <summary>Whether the bank was built with tiling (<see cref="Tile"/> &gt; 0).</summary>
        public bool IsTiled => Tile != 0;
        /// <summary>Tile width in image pixels; 0 = a whole-image bank (no tiling).</summary>
        public int Tile { get; }
        /// <summary>Tile height in image pixels (follows the encoder input's aspect ratio); 0 without tiling.</summary>
        public int TileHeight { get; }
        /// <summary>Share of a tile that overlaps its neighbour; 0 without tiling.</summary>
        public float TileOverlap { get; }
        /// <summary>Shared or per-position tile banks (Shared without tiling).</summary>
        public TileLayout TileLayout { get; }
        /// <summary><see cref="NexVitad.TileLayout.PerPosition"/>: tile columns; 0 for other banks.</summary>
        public int TileColumns { get; }
        /// <summary><see cref="NexVitad.TileLayout.PerPosition"/>: tile rows; 0 for other banks.</summary>
        public int TileRows { get; }
        /// <summary><see cref="NexVitad.TileLayout.PerPosition"/>: the one image width the bank scores; 0 for
        /// other banks, which score any size.</summary>
        public int ImageWidth { get; }
        /// <summary><see cref="NexVitad.TileLayout.PerPosition"/>: the one image height the bank scores; 0 for
        /// other banks.</summary>
        public int ImageHeight { get; }
        /// <summary>Whether the bank has a default region of interest (built with <see cref="BankOptions.Roi"/>).</summary>
        public bool HasRoi => RoiWidth != 0 && RoiHeight != 0;
        /// <summary>Width of the bank's default region of interest (C ABI revision 4); 0 = none.</summary>
        public int RoiWidth { get; }
        /// <summary>Height of the bank's default region of interest; 0 = none.</summary>
        public int RoiHeight { get; }
        /// <summary>Whether the bank was built with <see cref="BankOptions.Growable"/> (C ABI revision 5), so
        /// <see cref="MemoryBank.Add"/> and <see cref="MemoryBank.Merge"/> work on it.</summary>
        public bool Growable { get; }
    }
}
