using System;
using System.Buffers;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// An opened model folder (model.json, hiera.onnx, dinov2.onnx, optional head.safetensors):
    /// the frozen encoders and the fusion head. Builds and loads <see cref="MemoryBank"/>s and
    /// scores images against them.
    /// </summary>
    /// <remarks>
    /// Immutable and thread-safe: one model and one bank may score from any number of threads
    /// at once, with results identical to scoring one at a time. Dispose it when done (it holds
    /// ONNX Runtime sessions); banks built or loaded with it stay valid after that, in any
    /// dispose order: a bank keeps its native model alive and scores alone with
    /// <see cref="MemoryBank.Score(ImageBuffer, bool)"/> (nexvitad_score with a NULL model).
    /// Disposing while another thread is scoring is safe: the native model is freed when that
    /// call returns.
    /// </remarks>
    public sealed class Model : IDisposable
    {
        private readonly ModelHandle _handle;

        /// <summary>The folder the model was opened from.</summary>
        public string Directory { get; }

        /// <summary>64 lowercase hex digits identifying encoders, fusion configuration and head; a bank records it.</summary>
        public string Fingerprint { get; }

        private Model(ModelHandle handle, string directory)
        {
            _handle = handle;
            Directory = directory;
            Fingerprint = Utf8.FromNative(NativeMethods.nexvitad_model_fingerprint(handle));
            if (Fingerprint == null)
                Errors.Check(Status.Internal);
        }

        /// <summary>Opens a model folder, loading ONNX Runtime on first use.</summary>
        /// <param name="directory">The model folder.</param>
        /// <param name="options">null for the defaults (CPU, ONNX Runtime beside libnexvitad).</param>
        /// <exception cref="ArgumentException">The path is null or empty.</exception>
        /// <exception cref="NexVitadException">Io (folder or file missing), Format (bad model.json or ONNX
        /// file), Mismatch (graphs disagree with model.json), Runtime (ONNX Runtime not loadable),
        /// Unsupported (execution provider), InvalidArgument (a bad option).</exception>
        public static Model Open(string directory, ModelOptions options = null)
        {
            byte[] dir = Utf8.Path(directory, nameof(directory));
            Errors.CheckAbi();
            nexvitad_options o = (options ?? new ModelOptions()).ToNative();
            ModelHandle handle = null;
            try
            {
                Status s = NativeMethods.nexvitad_model_open(dir, ref o, out handle);
                Errors.Check(s);
                return new Model(handle, directory);
            }
            catch
            {
                handle?.Dispose();
                throw;
            }
            finally
            {
                ModelOptions.Free(ref o);
            }
        }

        /// <summary>True once <see cref="Dispose"/> has been called.</summary>
        public bool IsDisposed => _handle.IsClosed;

        /// <summary>Releases the native model (once; later calls do nothing).</summary>
        public void Dispose()
        {
            _handle.Dispose();
        }

        internal ModelHandle Handle
        {
            get
            {
                if (_handle.IsClosed)
                    throw new ObjectDisposedException(nameof(Model));
                return _handle;
            }
        }

        // ---- banks -------------------------------------------------------------------------

        /// <summary>Loads a bank saved by <see cref="MemoryBank.Save"/> and checks that this model built it.</summary>
        /// <exception cref="NexVitadException">Io (missing file), Format (not a bank, corrupt),
        /// Mismatch (built by another model), LimitExceeded.</exception>
        public MemoryBank LoadBank(string path)
        {
            byte[] p = Utf8.Path(path, nameof(path));
            BankHandle bank = null;
            try
            {
                Errors.Check(NativeMethods.nexvitad_bank_load(Handle, p, out bank));
                return new MemoryBank(bank);
            }
            catch
            {
                bank?.Dispose();
                throw;
            }
        }

        /// <summary>
        /// Builds a memory bank from normal (defect-free) images of the product: encodes them, fits
        /// the bank and calibrates the decision thresholds. Runs on the calling thread (wrap it in
        /// Task.Run to keep a UI responsive); the same images and options give the same bank.
        /// </summary>
        /// <param name="images">At least one image; any sizes and formats mixed.</param>
        /// <param name="options">null for the defaults.</param>
        /// <param name="progress">Receives the overall fraction done, 0..1, on the calling thread (encoding,
        /// clustering and calibration each take a third).</param>
        /// <param name="cancellationToken">Cancels at the next progress step.</param>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        /// <exception cref="NexVitadException">InvalidArgument (bad option, K above the number of patches),
        /// LimitExceeded, Runtime.</exception>
        /// <remarks>An exception thrown by <paramref name="progress"/> cancels the build and is rethrown here.</remarks>
        public unsafe MemoryBank BuildBank(IEnumerable<ImageBuffer> images, BankOptions options = null,
            IProgress<float> progress = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (images == null)
                throw new ArgumentNullException(nameof(images));
            var list = new List<ImageBuffer>(images);
            if (list.Count == 0)
                throw new ArgumentException("a bank needs at least one image", nameof(images));
            for (int i = 0; i < list.Count; i++)
                if (list[i] == null)
                    throw new ArgumentException("images[" + i + "] is null", nameof(images));
            ModelHandle model = Handle;
            options = options ?? new BankOptions();
            nexvitad_bank_options o = options.ToNative();
            cancellationToken.ThrowIfCancellationRequested();
            // The ROI (revision 4): a nexvitad_mask on this stack frame, its bytes pinned for the call.
            nexvitad_mask roi;
            MemoryHandle roiPin = default(MemoryHandle);

            var natives = new nexvitad_image[list.Count];
            var pins = new MemoryHandle[list.Count];
            var state = new CallbackState<float>(progress, cancellationToken);
            bool wantCallback = progress != null || cancellationToken.CanBeCanceled;
            GCHandle user = GCHandle.Alloc(state);
            BankHandle bank = null;
            try
            {
                if (options.Roi.HasValue)
                {
                    roiPin = options.Roi.Value.Pin(nameof(options) + ".Roi", out roi);
                    o.roi = (IntPtr)(&roi);
                }
                for (int i = 0; i < list.Count; i++)
                    pins[i] = list[i].Pin(out natives[i]);
                // s_onProgress is a static field, so the delegate (and its native thunk) outlives
                // the call; KeepAlive states that intent where the pointer is handed out.
                ProgressCallback cb = wantCallback ? s_onProgress : null;
                Status s = NativeMethods.nexvitad_bank_build(model, natives, (UIntPtr)(uint)list.Count, ref o,
                    cb, wantCallback ? GCHandle.ToIntPtr(user) : IntPtr.Zero, out bank);
                GC.KeepAlive(cb);
                if (state.Error != null)
                {
                    bank?.Dispose();
                    state.Error.Throw();
                }
                if (s == Status.Cancelled)
                    throw new OperationCanceledException(Utf8.FromNative(NativeMethods.nexvitad_last_error()),
                        cancellationToken);
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
                foreach (MemoryHandle pin in pins)
                    pin.Dispose();
                roiPin.Dispose();
            }
        }

        private static readonly ProgressCallback s_onProgress = OnProgress;

        /// <summary>The build's progress callback (encoding, clustering, calibration: a third each), for <see cref="MemoryBank.Add"/>.</summary>
        internal static ProgressCallback OnProgressDelegate => s_onProgress;

        /// <summary>Runs on the building thread, inside native code: nothing may be thrown out of it.</summary>
        private static int OnProgress(IntPtr user, int stage, UIntPtr done, UIntPtr total) =>
            CallbackState<float>.Report(user, () =>
            {
                double t = total.ToUInt64();
                double part = t == 0 ? 1.0 : Math.Min(1.0, done.ToUInt64() / t);
                return (float)((Math.Min(Math.Max(stage, 0), 2) + part) / 3.0);
            });

        // ---- scoring -----------------------------------------------------------------------

        /// <summary>Scores one image against <paramref name="bank"/>.</summary>
        /// <param name="bank">A bank built or loaded with this model (or an identical one).</param>
        /// <param name="image">The image.</param>
        /// <param name="withMap">false skips copying out the anomaly map (the scores are the same).</param>
        /// <exception cref="ObjectDisposedException">The model or bank was disposed.</exception>
        /// <exception cref="NexVitadException">Mismatch (bank from another model), LimitExceeded, Runtime.</exception>
        public ScoreResult Score(MemoryBank bank, ImageBuffer image, bool withMap = true)
        {
            if (bank == null)
                throw new ArgumentNullException(nameof(bank));
            if (image == null)
                throw new ArgumentNullException(nameof(image));
            nexvitad_image native;
            using (image.Pin(out native))
                return ScoreNative(bank, ref native, image.Width, image.Height, withMap);
        }

        /// <summary>
        /// Scores one image with per-call thresholds and defect regions (nexvitad_score_with_options, C ABI
        /// revision 3): <see cref="ScoreResult.Regions"/> (highest peak first) and
        /// <see cref="ScoreResult.ThresholdSource"/>. With a default <see cref="ScoreOptions"/> the score, map
        /// and decision equal <see cref="Score(MemoryBank, ImageBuffer, bool)"/>.
        /// </summary>
        /// <param name="bank">A bank built or loaded with this model (or an identical one).</param>
        /// <param name="image">The image.</param>
        /// <param name="options">Thresholds, the smallest region kept, whether to find regions.</param>
        /// <param name="withMap">false skips copying out the anomaly map (scores and regions are the same).</param>
        /// <exception cref="ObjectDisposedException">The model or bank was disposed.</exception>
        /// <exception cref="NexVitadException">Mismatch (bank from another model), InvalidArgument, LimitExceeded, Runtime.</exception>
        public ScoreResult Score(MemoryBank bank, ImageBuffer image, ScoreOptions options, bool withMap = true)
        {
            if (bank == null)
                throw new ArgumentNullException(nameof(bank));
            if (image == null)
                throw new ArgumentNullException(nameof(image));
            if (options == null)
                throw new ArgumentNullException(nameof(options));
            ModelHandle model = Handle;
            BankHandle bankHandle = bank.Handle;
            nexvitad_image native;
            using (image.Pin(out native))
                return ScoreWithOptions(model, bankHandle, ref native, image.Width, image.Height, options, withMap);
        }

        /// <summary>Scores pixels in a span (an array, a stackalloc buffer, or native memory via
        /// <c>new ReadOnlySpan&lt;byte&gt;(pointer, length)</c>).</summary>
        /// <param name="bank">A bank built or loaded with this model.</param>
        /// <param name="pixels">The first byte of the top row onwards.</param>
        /// <param name="width">Width in pixels, &gt; 0.</param>
        /// <param name="height">Height in pixels, &gt; 0.</param>
        /// <param name="format">The pixel layout.</param>
        /// <param name="stride">Bytes from one row to the next; 0 = packed.</param>
        /// <param name="withMap">false skips copying out the anomaly map.</param>
        /// <exception cref="ArgumentException">Empty span, bad size or stride, buffer too small for the layout.</exception>
        public unsafe ScoreResult Score(MemoryBank bank, ReadOnlySpan<byte> pixels, int width, int height,
            PixelFormat format, int stride = 0, bool withMap = true)
        {
            if (bank == null)
                throw new ArgumentNullException(nameof(bank));
            int effective = ImageLayout.Validate(pixels.Length, width, height, format, stride, nameof(pixels));
            fixed (byte* p = &MemoryMarshal.GetReference(pixels))
            {
                nexvitad_image native = ImageLayout.Native((IntPtr)p, width, height, effective, format);
                return ScoreNative(bank, ref native, width, height, withMap);
            }
        }

        /// <summary>Scores pixels stored in <paramref name="pixels"/> from <paramref name="offset"/>.</summary>
        /// <exception cref="ArgumentNullException"><paramref name="pixels"/> is null.</exception>
        public ScoreResult Score(MemoryBank bank, byte[] pixels, int offset, int width, int height,
            PixelFormat format, int stride = 0, bool withMap = true)
        {
            ReadOnlyMemory<byte> slice = ImageLayout.Slice(pixels, offset);
            return Score(bank, slice.Span, width, height, format, stride, withMap);
        }

        /// <summary>
        /// Scores several images in one call; the encoders run on groups of images, which is
        /// faster than one at a time. Results are in input order and identical to <see cref="Score(MemoryBank, ImageBuffer, bool)"/>.
        /// </summary>
        public ScoreResult[] ScoreBatch(MemoryBank bank, IReadOnlyList<ImageBuffer> images, bool withMaps = true)
        {
            return ScoreBatchCore(bank, images, null, withMaps);
        }

        /// <summary>
        /// As <see cref="ScoreBatch(MemoryBank, IReadOnlyList{ImageBuffer}, bool)"/>, with per-call options applied
        /// to every image (nexvitad_score_batch_with_options, C ABI revision 5): the thresholds, the region of
        /// interest (<see cref="ScoreOptions.Roi"/>, <see cref="ScoreOptions.IgnoreBankRoi"/>) and
        /// <see cref="ScoreOptions.MinRegionArea"/>. Each result's <see cref="ScoreResult.RegionCount"/> counts that
        /// image's defect regions, as <see cref="Score(MemoryBank, ImageBuffer, ScoreOptions, bool)"/> would; the
        /// regions themselves are not returned (<see cref="ScoreResult.Regions"/> stays empty, and
        /// <see cref="ScoreOptions.FindRegions"/> and <see cref="ScoreOptions.RegionCapacity"/> do not apply): score
        /// one image at a time for them. <see cref="ScoreResult.ThresholdSource"/> and
        /// <see cref="ScoreResult.RoiSource"/> say which settings were the caller's.
        /// </summary>
        /// <param name="bank">A bank built or loaded with this model (or an identical one).</param>
        /// <param name="images">The images; an empty list gives an empty array.</param>
        /// <param name="options">Thresholds, region of interest and the smallest region counted, for every image.</param>
        /// <param name="withMaps">false skips copying out the anomaly maps (scores and counts are the same).</param>
        /// <exception cref="ObjectDisposedException">The model or bank was disposed.</exception>
        /// <exception cref="NexVitadException">Mismatch (bank from another model), InvalidArgument (a bad image or
        /// option; nothing is scored), LimitExceeded, Runtime.</exception>
        public ScoreResult[] ScoreBatch(MemoryBank bank, IReadOnlyList<ImageBuffer> images, ScoreOptions options,
            bool withMaps = true)
        {
            if (options == null)
                throw new ArgumentNullException(nameof(options));
            return ScoreBatchCore(bank, images, options, withMaps);
        }

        /// <summary>Both ScoreBatch overloads: nexvitad_score_batch when <paramref name="options"/> is null, else
        /// nexvitad_score_batch_with_options.</summary>
        private unsafe ScoreResult[] ScoreBatchCore(MemoryBank bank, IReadOnlyList<ImageBuffer> images, ScoreOptions options,
            bool withMaps)
        {
            if (bank == null)
                throw new ArgumentNullException(nameof(bank));
            if (images == null)
                throw new ArgumentNullException(nameof(images));
            int n = images.Count;
            if (n == 0)
                return new ScoreResult[0];
            for (int i = 0; i < n; i++)
                if (images[i] == null)
                    throw new ArgumentException("images[" + i + "] is null", nameof(images));
            ModelHandle model = Handle;
            BankHandle bankHandle = bank.Handle;

            var natives = new nexvitad_image[n];
            var pins = new MemoryHandle[n];
            var maps = withMaps ? new float[n][] : null;
            var mapPins = withMaps ? new GCHandle[n] : null;
            var mapPtrs = withMaps ? new IntPtr[n] : null;
            var mapLens = withMaps ? new UIntPtr[n] : null;
            var results = new nexvitad_result[n];
            results[0].struct_size = NativeMethods.SizeOf<nexvitad_result>();
            // The ROI (revision 4): a nexvitad_mask on this stack frame, its bytes pinned for the call.
            nexvitad_score_options o = options != null ? options.ToNative() : default(nexvitad_score_options);
            nexvitad_mask roi;
            MemoryHandle roiPin = default(MemoryHandle);
            bool ok = false;
            try
            {
                if (options != null && options.Roi.HasValue)
                {
                    roiPin = options.Roi.Value.Pin(nameof(options) + ".Roi", out roi);
                    o.roi = (IntPtr)(&roi);
                }
                for (int i = 0; i < n; i++)
                {
                    pins[i] = images[i].Pin(out natives[i]);
                    if (withMaps)
                    {
                        int len = MapLength(images[i].Width, images[i].Height);
                        maps[i] = ArrayPool<float>.Shared.Rent(len);
                        mapPins[i] = GCHandle.Alloc(maps[i], GCHandleType.Pinned);
                        mapPtrs[i] = mapPins[i].AddrOfPinnedObject();
                        mapLens[i] = (UIntPtr)(uint)len;
                    }
                }
                Errors.Check(options != null
                    ? NativeMethods.nexvitad_score_batch_with_options(model, bankHandle, natives, (UIntPtr)(uint)n,
                        ref o, mapPtrs, mapLens, results)
                    : NativeMethods.nexvitad_score_batch(model, bankHandle, natives, (UIntPtr)(uint)n,
                        mapPtrs, mapLens, results));
                var output = new ScoreResult[n];
                for (int i = 0; i < n; i++)
                    output[i] = new ScoreResult(ref results[i], withMaps ? maps[i] : null);
                ok = true;
                return output;
            }
            finally
            {
                roiPin.Dispose();
                for (int i = 0; i < n; i++)
                {
                    pins[i].Dispose();
                    if (withMaps)
                    {
                        if (mapPins[i].IsAllocated)
                            mapPins[i].Free();
                        if (!ok && maps[i] != null)
                            ArrayPool<float>.Shared.Return(maps[i]);
                    }
                }
            }
        }

        private unsafe ScoreResult ScoreNative(MemoryBank bank, ref nexvitad_image image, int width, int height, bool withMap)
        {
            ModelHandle model = Handle;
            BankHandle bankHandle = bank.Handle;
            var result = new nexvitad_result { struct_size = NativeMethods.SizeOf<nexvitad_result>() };
            if (!withMap)
            {
                Errors.Check(NativeMethods.nexvitad_score(model, bankHandle, ref image, IntPtr.Zero, UIntPtr.Zero, ref result));
                return new ScoreResult(ref result, null);
            }
            int len = MapLength(width, height);
            float[] map = ArrayPool<float>.Shared.Rent(len);
            try
            {
                fixed (float* m = map)
                    Errors.Check(NativeMethods.nexvitad_score(model, bankHandle, ref image, (IntPtr)m, (UIntPtr)(uint)len, ref result));
            }
            catch
            {
                ArrayPool<float>.Shared.Return(map);
                throw;
            }
            return new ScoreResult(ref result, map);
        }

        /// <summary>
        /// One nexvitad_score_with_options call (<paramref name="model"/> null: the bank's own model), with the
        /// region array grown to fit: when the library counts more regions than the array holds, the image is
        /// scored again with room for all (scoring is deterministic, so the count does not change).
        /// </summary>
        internal static unsafe ScoreResult ScoreWithOptions(ModelHandle model, BankHandle bank, ref nexvitad_image image,
            int width, int height, ScoreOptions options, bool withMap)
        {
            nexvitad_score_options o = options.ToNative();
            var result = new nexvitad_result { struct_size = NativeMethods.SizeOf<nexvitad_result>() };
            // The ROI (revision 4): a nexvitad_mask on this stack frame, its bytes pinned for the call.
            nexvitad_mask roi;
            MemoryHandle roiPin = default(MemoryHandle);
            int len = withMap ? MapLength(width, height) : 0;
            float[] map = withMap ? ArrayPool<float>.Shared.Rent(len) : null;
            try
            {
                if (options.Roi.HasValue)
                {
                    roiPin = options.Roi.Value.Pin(nameof(options) + ".Roi", out roi);
                    o.roi = (IntPtr)(&roi);
                }
                nexvitad_region[] regions = options.FindRegions ? new nexvitad_region[options.RegionCapacity] : null;
                UIntPtr count = UIntPtr.Zero;
                for (;;)
                {
                    fixed (float* m = map)
                    fixed (nexvitad_region* r = regions)
                    {
                        IntPtr countPtr = regions != null ? (IntPtr)(&count) : IntPtr.Zero;
                        UIntPtr cap = (UIntPtr)(uint)(regions != null ? regions.Length : 0);
                        Status s = model != null
                            ? NativeMethods.nexvitad_score_with_options(model, bank, ref image, ref o, (IntPtr)m,
                                (UIntPtr)(uint)len, (IntPtr)r, cap, countPtr, ref result)
                            : NativeMethods.nexvitad_score_with_options(IntPtr.Zero, bank, ref image, ref o, (IntPtr)m,
                                (UIntPtr)(uint)len, (IntPtr)r, cap, countPtr, ref result);
                        Errors.Check(s);
                    }
                    if (regions == null || count.ToUInt64() <= (ulong)regions.Length)
                        break;
                    regions = new nexvitad_region[checked((int)count.ToUInt64())];
                }
                Region[] found = null;
                if (regions != null)
                {
                    found = new Region[(int)count.ToUInt64()];
                    for (int i = 0; i < found.Length; i++)
                        found[i] = new Region(ref regions[i]);
                }
                return new ScoreResult(ref result, map, found);
            }
            catch
            {
                if (map != null)
                    ArrayPool<float>.Shared.Return(map);
                throw;
            }
            finally
            {
                roiPin.Dispose();
            }
        }

        internal static int MapLength(int width, int height)
        {
            long len = (long)width * height;
            if (len > 0x7FFFFFC7) // the largest .NET array
                throw new ArgumentException("a " + width + "x" + height + " anomaly map does not fit a .NET array; score with withMap: false");
            return (int)len;
        }
    }
}
