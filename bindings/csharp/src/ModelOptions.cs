using System;
using System.Runtime.InteropServices;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// How to open a model (nexvitad_options). A new instance holds the library's defaults:
    /// ONNX Runtime found beside libnexvitad, CPU, ONNX Runtime's own thread count, full graph
    /// optimisation, the default image limits.
    /// </summary>
    public sealed class ModelOptions
    {
        private int _intraThreads;
        private int _optimizationLevel;
        private int _maxImageSide;
        private long _maxImagePixels;
        private int _tileBatch;
        private bool _parallelEncoders;

        /// <summary>Reads the defaults from the library.</summary>
        public ModelOptions()
        {
            var o = new nexvitad_options { struct_size = NativeMethods.SizeOf<nexvitad_options>() };
            Errors.Check(NativeMethods.nexvitad_options_default(ref o));
            OrtLibrary = Utf8.FromNative(o.ort_library);
            ExecutionProvider = Utf8.FromNative(o.execution_provider) ?? "cpu";
            _intraThreads = checked((int)o.intra_threads);
            _optimizationLevel = checked((int)o.optimization_level);
            _maxImageSide = checked((int)o.max_image_side);
            _maxImagePixels = checked((long)o.max_image_pixels);
            _tileBatch = checked((int)o.tile_batch);
            _parallelEncoders = o.parallel_encoders != 0;
        }

        /// <summary>Path of libonnxruntime.so to load; null searches $NEXVITAD_ORT_LIBRARY, $ORT_DYLIB_PATH, then libnexvitad's folder.</summary>
        public string OrtLibrary { get; set; }

        /// <summary>"cpu" (default) or "cuda:N" (needs a CUDA build of ONNX Runtime).</summary>
        public string ExecutionProvider { get; set; }

        /// <summary>ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose.</summary>
        public int IntraThreads { get => _intraThreads; set => _intraThreads = NonNegative(value, nameof(IntraThreads)); }

        /// <summary>Graph optimisation off: <see cref="OptimizationLevel"/> 0, as in C (a real setting).</summary>
        public const int OptimizationOff = 0;

        /// <summary>The library's default level (3, all): <see cref="OptimizationLevel"/> -1, as C's
        /// "negative means the default" (stored as (uint)-1 in nexvitad_options).</summary>
        public const int OptimizationDefault = -1;

        /// <summary>Graph optimisation level as in C: <see cref="OptimizationOff"/> (0), 1 basic,
        /// 2 extended, 3 all; <see cref="OptimizationDefault"/> (any negative value) = the library's
        /// default. A new instance holds 3, the default.</summary>
        public int OptimizationLevel { get => _optimizationLevel; set => _optimizationLevel = value < 0 ? OptimizationDefault : value; }

        /// <summary>Largest accepted image width or height; 0 = library default.</summary>
        public int MaxImageSide { get => _maxImageSide; set => _maxImageSide = NonNegative(value, nameof(MaxImageSide)); }

        /// <summary>Largest accepted width x height; 0 = library default.</summary>
        public long MaxImagePixels
        {
            get => _maxImagePixels;
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException(nameof(MaxImagePixels), value, "must be >= 0");
                _maxImagePixels = value;
            }
        }

        /// <summary>Tiles per encoder call when scoring tiled images (C ABI revision 6); 0 = the default
        /// for the execution provider (4 on the CPU, 16 on CUDA), at most 256 (above it
        /// <see cref="Model.Open(string, ModelOptions)"/> throws <see cref="NexVitadException"/> with
        /// <see cref="Status.InvalidArgument"/>). Larger calls hold more memory and are not faster on the
        /// CPU; on a GPU they keep the device busy. A new instance holds 0.</summary>
        public int TileBatch { get => _tileBatch; set => _tileBatch = NonNegative(value, nameof(TileBatch)); }

        /// <summary>Runs the two encoders (Hiera and DINOv2) side by side, each on its own thread, instead of
        /// one after the other (nexvitad_options.parallel_encoders 1, C ABI revision 6); with
        /// <see cref="IntraThreads"/> 0 each encoder then gets half the cores. Faster at batch 1 on CPUs
        /// with few cores; the scores are the same. A new instance holds false (off).</summary>
        public bool ParallelEncoders { get => _parallelEncoders; set => _parallelEncoders = value; }

        private static int NonNegative(int value, string name)
        {
            if (value < 0) throw new ArgumentOutOfRangeException(name, value, "must be >= 0");
            return value;
        }

        /// <summary>The C struct; its two strings are allocated here and freed by <see cref="Free"/>.</summary>
        internal nexvitad_options ToNative()
        {
            var o = new nexvitad_options
            {
                struct_size = NativeMethods.SizeOf<nexvitad_options>(),
                intra_threads = (uint)_intraThreads,
                optimization_level = unchecked((uint)_optimizationLevel), // -1: C's "negative = default"
                max_image_side = (uint)_maxImageSide,
                max_image_pixels = (ulong)_maxImagePixels,
                tile_batch = (uint)_tileBatch,
                parallel_encoders = _parallelEncoders ? 1u : 0u,
            };
            try
            {
                o.ort_library = Utf8.Alloc(OrtLibrary);
                o.execution_provider = Utf8.Alloc(ExecutionProvider);
            }
            catch
            {
                Free(ref o);
                throw;
            }
            return o;
        }

        internal static void Free(ref nexvitad_options o)
        {
            if (o.ort_library != IntPtr.Zero) Marshal.FreeHGlobal(o.ort_library);
            if (o.execution_provider != IntPtr.Zero) Marshal.FreeHGlobal(o.execution_provider);
            o.ort_library = IntPtr.Zero;
            o.execution_provider = IntPtr.Zero;
        }
    }
}
