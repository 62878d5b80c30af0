using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>The phase of a training run reported to <see cref="TrainProgress"/>.</summary>
    public enum TrainPhase
    {
        /// <summary>Encoding the images once each: Done of Total images.</summary>
        Encode = 0,
        /// <summary>A training step finished: Done of Total steps of the whole run.</summary>
        Step = 1,
    }

    /// <summary>Loss terms of a step (or a mean over steps): Loss = Src + lambda1 * PseudoLabel + lambda2 * Consistency.</summary>
    public struct TrainLosses
    {
        /// <summary>The total loss.</summary>
        public double Loss;
        /// <summary>Supervised source loss (BCE + Dice).</summary>
        public double Source;
        /// <summary>Pseudo-label loss.</summary>
        public double PseudoLabel;
        /// <summary>Consistency loss.</summary>
        public double Consistency;
        /// <summary>Share of target cells whose pseudo label passed theta, in [0, 1].</summary>
        public double Coverage;

        internal TrainLosses(double loss, double src, double pl, double cons, double coverage)
        {
            Loss = loss;
            Source = src;
            PseudoLabel = pl;
            Consistency = cons;
            Coverage = coverage;
        }
    }

    /// <summary>One progress report of <see cref="Trainer.Train"/>.</summary>
    public struct TrainProgress
    {
        /// <summary>Encoding or training.</summary>
        public TrainPhase Phase;
        /// <summary>Images encoded (Encode) or steps done in the whole run (Step).</summary>
        public long Done;
        /// <summary>Images to encode (Encode) or steps of the whole run (Step).</summary>
        public long Total;
        /// <summary>The step's epoch, from 0 (0 while encoding).</summary>
        public int Epoch;
        /// <summary>Epochs of the run (0 while encoding).</summary>
        public int Epochs;
        /// <summary>Steps done in this epoch (0 while encoding).</summary>
        public int Step;
        /// <summary>Steps per epoch (0 while encoding).</summary>
        public int StepsPerEpoch;
        /// <summary>This step's loss terms (zero while encoding).</summary>
        public TrainLosses Losses;
        /// <summary>Running mean of the loss terms over this epoch's steps.</summary>
        public TrainLosses EpochMean;
    }

    /// <summary>The summary of a finished training run.</summary>
    public sealed class TrainResult
    {
        /// <summary>Steps of the whole run.</summary>
        public long Steps { get; internal set; }
        /// <summary>Steps this call ran (fewer than <see cref="Steps"/> after a resume).</summary>
        public long StepsRun { get; internal set; }
        /// <summary>Epochs of the run.</summary>
        public int Epochs { get; internal set; }
        /// <summary>Steps per epoch.</summary>
        public int StepsPerEpoch { get; internal set; }
        /// <summary>Source images trained on.</summary>
        public int SourceImages { get; internal set; }
        /// <summary>Target images trained on.</summary>
        public int TargetImages { get; internal set; }
        /// <summary>Mean loss terms of the last epoch.</summary>
        public TrainLosses LastEpoch { get; internal set; }
        /// <summary>Time spent encoding the images.</summary>
        public TimeSpan EncodeTime { get; internal set; }
        /// <summary>Time spent in training steps in this call.</summary>
        public TimeSpan TrainTime { get; internal set; }
        /// <summary>Size of the feature cache file, in bytes (C ABI revision 7).</summary>
        public long CacheBytes { get; internal set; }
        /// <summary>Feature sets (images and perturbed copies) this call encoded.</summary>
        public long Encoded { get; internal set; }
        /// <summary>Feature sets this call found in the feature cache, from a stopped or earlier run.</summary>
        public long Reused { get; internal set; }
    }

    /// <summary>
    /// How to train (nexvitad_train_options). A new instance holds the library's defaults, those
    /// of <c>nexvitad train</c>: 4 epochs, batch 8, AdamW lr 1e-3 and weight decay 0.01, theta,
    /// lambda1, lambda2 from the model, seed 0, decoder width 32, a checkpoint every 20 steps, 2
    /// perturbed copies per target image. The library checks the values and names a bad one in a
    /// <see cref="NexVitadException"/> with <see cref="Status.InvalidArgument"/>.
    /// </summary>
    public sealed class TrainOptions
    {
        private nexvitad_train_options _o;

        /// <summary>Reads the defaults from the library.</summary>
        public TrainOptions()
        {
            _o = new nexvitad_train_options { struct_size = NativeMethods.SizeOf<nexvitad_train_options>() };
            Errors.Check(NativeMethods.nexvitad_train_options_default(ref _o));
        }

        /// <summary>Passes over the source images; &gt;= 1.</summary>
        public int Epochs { get => (int)_o.epochs; set => _o.epochs = NonNegative(value, nameof(Epochs)); }
        /// <summary>Source images per step; &gt;= 1.</summary>
        public int Batch { get => (int)_o.batch; set => _o.batch = NonNegative(value, nameof(Batch)); }
        /// <summary>AdamW learning rate; &gt; 0.</summary>
        public double LearningRate { get => _o.lr; set => _o.lr = value; }
        /// <summary>AdamW decoupled weight decay; &gt;= 0.</summary>
        public double WeightDecay { get => _o.weight_decay; set => _o.weight_decay = value; }

        /// <summary>Pseudo-label confidence threshold in (0, 1); null = the model's default (0.7).</summary>
        public double? Theta
        {
            get => _o.theta == 0 ? (double?)null : _o.theta;
            set => _o.theta = value ?? 0;
        }

        /// <summary>Weight of the pseudo-label loss, &gt;= 0; null = the model's default (1.0).</summary>
        public double? Lambda1
        {
            get => _o.lambda1 == -1 ? (double?)null : _o.lambda1;
            set => _o.lambda1 = value ?? -1;
        }

        /// <summary>Weight of the consistency loss, &gt;= 0; null = the model's default (0.5).</summary>
        public double? Lambda2
        {
            get => _o.lambda2 == -1 ? (double?)null : _o.lambda2;
            set => _o.lambda2 = value ?? -1;
        }

        /// <summary>Seed of initialisation, batch order and perturbations.</summary>
        public long Seed { get => unchecked((long)_o.seed); set => _o.seed = unchecked((ulong)value); }
        /// <summary>Channels of the decoder trunk; &gt;= 1.</summary>
        public int DecoderWidth { get => (int)_o.decoder_width; set => _o.decoder_width = NonNegative(value, nameof(DecoderWidth)); }
        /// <summary>Steps between checkpoints; 0 = only when cancelled and at the end.</summary>
        public int CheckpointEvery { get => (int)_o.checkpoint_every; set => _o.checkpoint_every = NonNegative(value, nameof(CheckpointEvery)); }
        /// <summary>Perturbed copies per target image; &gt;= 1.</summary>
        public int Copies { get => (int)_o.copies; set => _o.copies = NonNegative(value, nameof(Copies)); }
        /// <summary>Whether the perturbed copies may be flipped.</summary>
        public bool Flips { get => _o.flips != 0; set => _o.flips = value ? 1u : 0u; }
        /// <summary>Pixel noise std of the perturbed copies (8-bit levels).</summary>
        public double NoiseStd { get => _o.noise_std; set => _o.noise_std = value; }
        /// <summary>Colour jitter of the perturbed copies, in [0, 1).</summary>
        public double Jitter { get => _o.jitter; set => _o.jitter = value; }
        /// <summary>Continue the run whose checkpoint is in the output folder (same data and options).</summary>
        public bool Resume { get => _o.resume != 0; set => _o.resume = value ? 1u : 0u; }
        /// <summary>Also train on the target's test images, unlabeled.</summary>
        public bool TargetTest { get => _o.target_test != 0; set => _o.target_test = value ? 1u : 0u; }

        /// <summary>
        /// Folder of the feature cache (features.nxcache: every training image's encoder outputs,
        /// written once, reused by <see cref="Resume"/>); null = the output folder. A folder shared
        /// by runs on the same data encodes the images once; a cache there of other data is refused
        /// (<see cref="Status.Mismatch"/>) and left alone. C ABI revision 7.
        /// </summary>
        public string CacheDir
        {
            get => _cacheDir;
            set
            {
                if (value != null && (value.Length == 0 || value.IndexOf('\0') >= 0))
                    throw new ArgumentException("CacheDir is empty or contains a NUL character", nameof(CacheDir));
                _cacheDir = value;
            }
        }
        private string _cacheDir;

        /// <summary>
        /// Bytes of feature sets held in memory; the others are read from the cache file at each
        /// step. 0 = the default, 1/8 of RAM and at most 512 MiB. Below one step's feature sets the
        /// library refuses it (<see cref="Status.InvalidArgument"/>, naming the least). C ABI revision 7.
        /// </summary>
        public long CacheMem
        {
            get => unchecked((long)_o.cache_mem);
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException(nameof(CacheMem), value, "must be >= 0 (0 = the default)");
                _o.cache_mem = (ulong)value;
            }
        }

        private static uint NonNegative(int value, string name)
        {
            if (value < 0) throw new ArgumentOutOfRangeException(name, value, "must be >= 0");
            return (uint)value;
        }

        internal nexvitad_train_options ToNative()
        {
            return _o;
        }
    }

    /// <summary>Training a model's fusion head (C ABI revision 1).</summary>
    public static class Trainer
    {
        /// <summary>
        /// Adapts <paramref name="baseModel"/>'s fusion head to the labelled
        /// <paramref name="sources"/> and the unlabeled <paramref name="target"/> domain of the
        /// MVTec-layout dataset <paramref name="dataRoot"/>, and writes a new model folder
        /// <paramref name="outDir"/> (open it with <see cref="Model.Open"/>; its fingerprint differs
        /// from the base model's). Runs on the calling thread; the base model stays usable meanwhile.
        /// </summary>
        /// <param name="baseModel">The model to start from.</param>
        /// <param name="dataRoot">Dataset folder, one sub-folder per domain.</param>
        /// <param name="sources">Labelled domains (with defective test images and masks).</param>
        /// <param name="target">The unlabeled domain; not one of the sources.</param>
        /// <param name="outDir">New or empty folder, or with <see cref="TrainOptions.Resume"/> the cancelled run's.</param>
        /// <param name="options">null for the defaults.</param>
        /// <param name="progress">Reported on the training thread after each encoded image and each step.</param>
        /// <param name="cancellationToken">Stops the run at its next report: OperationCanceledException,
        /// with a checkpoint left in <paramref name="outDir"/> once a step ran (resume it with
        /// <see cref="TrainOptions.Resume"/> to the same result as an unbroken run).</param>
        /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
        /// <exception cref="NexVitadException">InvalidArgument (bad domains or options, e.g. theta outside (0, 1)),
        /// Io (missing data root), Format, Mismatch (resume with other data or options), Runtime.</exception>
        public static TrainResult Train(Model baseModel, string dataRoot, IEnumerable<string> sources, string target,
            string outDir, TrainOptions options = null, IProgress<TrainProgress> progress = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (baseModel == null)
                throw new ArgumentNullException(nameof(baseModel));
            if (sources == null)
                throw new ArgumentNullException(nameof(sources));
            byte[] root = Utf8.Path(dataRoot, nameof(dataRoot));
            byte[] tgt = Utf8.Path(target, nameof(target));
            byte[] outPath = Utf8.Path(outDir, nameof(outDir));
            var names = new List<string>(sources);
            for (int i = 0; i < names.Count; i++)
                if (names[i] == null || names[i].IndexOf('\0') >= 0)
                    throw new ArgumentException("sources[" + i + "] is null or contains a NUL character", nameof(sources));
            ModelHandle model = baseModel.Handle;
            TrainOptions opts = options ?? new TrainOptions();
            nexvitad_train_options o = opts.ToNative();
            cancellationToken.ThrowIfCancellationRequested();

            var state = new CallbackState<TrainProgress>(progress, cancellationToken);
            bool wantCallback = progress != null || cancellationToken.CanBeCanceled;
            GCHandle user = GCHandle.Alloc(state);
            var native = new IntPtr[Math.Max(names.Count, 1)];
            try
            {
                for (int i = 0; i < names.Count; i++)
                    native[i] = Utf8.Alloc(names[i]);
                if (opts.CacheDir != null)
                    o.cache_dir = Utf8.Alloc(opts.CacheDir);
                var r = new nexvitad_train_result { struct_size = NativeMethods.SizeOf<nexvitad_train_result>() };
                TrainProgressCallback cb = wantCallback ? s_onProgress : null;
                Status s = NativeMethods.nexvitad_train(model, root, native, (UIntPtr)(uint)names.Count, tgt, outPath,
                    ref o, cb, wantCallback ? GCHandle.ToIntPtr(user) : IntPtr.Zero, ref r);
                GC.KeepAlive(cb);
                state.Error?.Throw();
                if (s == Status.Cancelled)
                    throw new OperationCanceledException(Utf8.FromNative(NativeMethods.nexvitad_last_error()),
                        cancellationToken);
                Errors.Check(s);
                return new TrainResult
                {
                    Steps = (long)r.steps,
                    StepsRun = (long)r.steps_run,
                    Epochs = (int)r.epochs,
                    StepsPerEpoch = (int)r.steps_per_epoch,
                    SourceImages = (int)r.source_images,
                    TargetImages = (int)r.target_images,
                    LastEpoch = new TrainLosses(r.loss, r.l_src, r.l_pl, r.l_cons, r.coverage),
                    EncodeTime = TimeSpan.FromSeconds(r.encode_s),
                    TrainTime = TimeSpan.FromSeconds(r.train_s),
                    CacheBytes = (long)r.cache_bytes,
                    Encoded = (long)r.encoded,
                    Reused = (long)r.reused,
                };
            }
            finally
            {
                user.Free();
                if (o.cache_dir != IntPtr.Zero)
                    Marshal.FreeHGlobal(o.cache_dir);
                foreach (IntPtr p in native)
                    if (p != IntPtr.Zero)
                        Marshal.FreeHGlobal(p);
            }
        }

        private static readonly TrainProgressCallback s_onProgress = OnProgress;

        /// <summary>Runs on the training thread, inside native code: nothing may be thrown out of it.</summary>
        private static int OnProgress(IntPtr user, IntPtr progress) =>
            CallbackState<TrainProgress>.Report(user, () =>
            {
                var p = (nexvitad_train_progress)Marshal.PtrToStructure(progress, typeof(nexvitad_train_progress));
                return new TrainProgress
                {
                    Phase = (TrainPhase)p.phase,
                    Done = (long)p.done,
                    Total = (long)p.total,
                    Epoch = (int)p.epoch,
                    Epochs = (int)p.epochs,
                    Step = (int)p.step,
                    StepsPerEpoch = (int)p.steps_per_epoch,
                    Losses = new TrainLosses(p.loss, p.l_src, p.l_pl, p.l_cons, p.coverage),
                    EpochMean = new TrainLosses(p.mean_loss, p.mean_l_src, p.mean_l_pl, p.mean_l_cons, p.mean_coverage),
                };
            });
    }
}
