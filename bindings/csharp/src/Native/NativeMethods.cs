// The raw C ABI of libnexvitad (include/nexvitad.h, ABI version 1), one DllImport per
// function. Struct and field names mirror the C header exactly so that the layout test
// (tests/layout.c) can compare every field offset with Marshal.OffsetOf by name.
//
// size_t is UIntPtr (pointer-sized on every platform nexvitad supports). Strings go in as
// NUL-terminated UTF-8 byte arrays and come back as IntPtr decoded by Utf8.FromNative,
// because the marshaller's "Ansi" is not UTF-8 on Windows.
using System;
using System.Runtime.InteropServices;

// Each field and function is documented in nexvitad.h, which this file mirrors name for name.
#pragma warning disable 1591

namespace NexVitad.Native
{
    /// <summary>nexvitad_options: how to open a model.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_options
    {
        public UIntPtr struct_size;
        public IntPtr ort_library;
        public IntPtr execution_provider;
        public uint intra_threads;
        public uint optimization_level;
        public uint max_image_side;
        public uint reserved0;
        public ulong max_image_pixels;
        public uint tile_batch;
        public uint parallel_encoders;
    }

    /// <summary>nexvitad_bank_options: how to build a bank.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_bank_options
    {
        public UIntPtr struct_size;
        public uint scorer;
        public uint k;
        public float epsilon;
        public uint max_iters;
        public float tol;
        public float coreset_ratio;
        public float sigma;
        public uint image_score_mode;
        public float image_score_top_fraction;
        public uint augment;
        public float target_fpr;
        public uint batch_size;
        public ulong seed;
        public ulong max_vectors;
        // Revision 3 (tiled banks).
        public uint tile;
        public float tile_overlap;
        public uint tile_layout;
        public uint reserved1;
        // Revision 4 (regions of interest): a nexvitad_mask*, NULL = none.
        public IntPtr roi;
        // Revision 5 (banks that grow): 1 = keep the shots, 0 = not growable.
        public uint growable;
        public uint reserved2;
    }

    /// <summary>nexvitad_mask: a caller-owned region-of-interest mask (revision 4; fixed layout, no struct_size).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_mask
    {
        public IntPtr data;
        public uint width;
        public uint height;
        public UIntPtr stride;
    }

    /// <summary>nexvitad_image: a borrowed view of caller pixels (not versioned).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_image
    {
        public IntPtr data;
        public uint width;
        public uint height;
        public UIntPtr stride;
        public uint format;
    }

    /// <summary>nexvitad_bank_info: what a bank holds.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_bank_info
    {
        public UIntPtr struct_size;
        public uint scorer;
        public uint k;
        public uint dim;
        public uint grid_w;
        public uint grid_h;
        public uint shots;
        public ulong vectors;
        public float sigma;
        public float image_threshold;
        public float pixel_threshold;
        public float target_fpr;
        public uint image_score_mode;
        public float image_score_top_fraction;
        public uint augment;
        public uint converged;
        public uint iterations;
        public uint reserved0;
        public ulong seed;
        // Revision 3 (tiled banks).
        public uint tile;
        public uint tile_h;
        public float tile_overlap;
        public uint tile_layout;
        public uint tile_cols;
        public uint tile_rows;
        public uint image_width;
        public uint image_height;
        // Revision 4 (regions of interest).
        public uint roi_width;
        public uint roi_height;
        // Revision 5 (banks that grow).
        public uint growable;
        public uint reserved1;
    }

    /// <summary>nexvitad_result: the outcome of scoring one image.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_result
    {
        public UIntPtr struct_size;
        public float image_score;
        public float image_threshold;
        public float pixel_threshold;
        public int is_anomalous;
        public uint width;
        public uint height;
        public double prepare_s;
        public double hiera_s;
        public double dinov2_s;
        public double head_s;
        public double matching_s;
        public double upsample_smooth_s;
        // Revision 3 (inspection outputs).
        public uint threshold_flags;
        public uint reserved0;
        public ulong region_count;
        // Revision 4 (regions of interest).
        public uint roi_source;
        public uint reserved1;
    }

    /// <summary>nexvitad_score_options: per-call thresholds and the smallest region kept (revision 3).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_score_options
    {
        public UIntPtr struct_size;
        public float image_threshold;
        public float pixel_threshold;
        public ulong min_region_area;
        // Revision 4 (regions of interest): a nexvitad_mask*, NULL = the bank's.
        public IntPtr roi;
        public uint ignore_bank_roi;
        public uint reserved0;
    }

    /// <summary>nexvitad_region: one defect region (revision 3; fixed size, no struct_size).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_region
    {
        public uint x;
        public uint y;
        public uint width;
        public uint height;
        public ulong area;
        public float centroid_x;
        public float centroid_y;
        public float peak;
        public float mean;
    }

    /// <summary>nexvitad_train_options: how to train (ABI revision 1).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_train_options
    {
        public UIntPtr struct_size;
        public uint epochs;
        public uint batch;
        public double lr;
        public double weight_decay;
        public double theta;
        public double lambda1;
        public double lambda2;
        public ulong seed;
        public uint decoder_width;
        public uint checkpoint_every;
        public uint copies;
        public uint flips;
        public double noise_std;
        public double jitter;
        public uint resume;
        public uint target_test;
        public IntPtr cache_dir;
        public ulong cache_mem;
    }

    /// <summary>nexvitad_train_progress: one report of a training run (written by the library).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_train_progress
    {
        public UIntPtr struct_size;
        public uint phase;
        public uint epoch;
        public uint epochs;
        public uint step;
        public uint steps_per_epoch;
        public uint reserved0;
        public ulong done;
        public ulong total;
        public double loss;
        public double l_src;
        public double l_pl;
        public double l_cons;
        public double coverage;
        public double mean_loss;
        public double mean_l_src;
        public double mean_l_pl;
        public double mean_l_cons;
        public double mean_coverage;
    }

    /// <summary>nexvitad_train_result: the summary of a finished run.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct nexvitad_train_result
    {
        public UIntPtr struct_size;
        public ulong steps;
        public ulong steps_run;
        public uint epochs;
        public uint steps_per_epoch;
        public uint source_images;
        public uint target_images;
        public double loss;
        public double l_src;
        public double l_pl;
        public double l_cons;
        public double coverage;
        public double encode_s;
        public double train_s;
        public ulong cache_bytes;
        public ulong encoded;
        public ulong reused;
    }

    /// <summary>nexvitad_train_progress_cb; <paramref name="progress"/> points to a nexvitad_train_progress valid during the call. Return non-zero to cancel. Must not throw.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate int TrainProgressCallback(IntPtr user, IntPtr progress);

    /// <summary>nexvitad_progress_cb. Return non-zero to cancel. Must not throw.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate int ProgressCallback(IntPtr user, int stage, UIntPtr done, UIntPtr total);

    /// <summary>nexvitad_log_cb. <paramref name="message"/> is UTF-8, valid during the call only. Must not throw.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void LogCallback(IntPtr user, int level, IntPtr message);

    /// <summary>
    /// The C functions. Handles are passed as <see cref="ModelHandle"/>/<see cref="BankHandle"/>
    /// so the marshaller holds a reference on them for the duration of each call: a concurrent
    /// Dispose then waits for the call to finish instead of freeing a handle in use.
    /// </summary>
    public static class NativeMethods
    {
        /// <summary>Library name: libnexvitad.so on Linux, nexvitad.dll on Windows, libnexvitad.dylib on macOS.</summary>
        public const string Lib = "nexvitad";

        /// <summary>The C ABI version this binding was written against (NEXVITAD_ABI_VERSION).</summary>
        public const uint AbiVersion = 1;

        /// <summary>The ABI revision (additions) this binding uses (NEXVITAD_ABI_REVISION; 1 = training,
        /// 2 = a NULL model in nexvitad_score, 3 = tiled banks: the larger nexvitad_bank_options and
        /// nexvitad_bank_info, which older libraries refuse; and inspection outputs:
        /// nexvitad_score_with_options, nexvitad_region, the larger nexvitad_result; 4 = regions of
        /// interest: nexvitad_mask and the larger nexvitad_bank_options, nexvitad_score_options,
        /// nexvitad_result and nexvitad_bank_info; nexvitad_bank_get_roi, nexvitad_bank_recalibrate; 5 = banks
        /// that grow: the larger nexvitad_bank_options and nexvitad_bank_info, nexvitad_bank_add, nexvitad_bank_merge;
        /// 6 = tiles per encoder call: the larger nexvitad_options with tile_batch, which older libraries refuse;
        /// 7 = training's feature cache: the larger nexvitad_train_options and nexvitad_train_result).</summary>
        public const uint AbiRevision = 7;

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr nexvitad_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern uint nexvitad_abi_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr nexvitad_last_error();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr nexvitad_status_name(int status);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_selftest_panic();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_set_log_callback(LogCallback cb, IntPtr user);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_options_default(ref nexvitad_options options);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_model_open(byte[] dir, ref nexvitad_options options, out ModelHandle model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr nexvitad_model_fingerprint(ModelHandle model);

        /// <summary>Takes the raw pointer: only <see cref="ModelHandle.ReleaseHandle"/> calls it.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_model_free(IntPtr model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_options_default(ref nexvitad_bank_options options);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_build(ModelHandle model, [In] nexvitad_image[] images, UIntPtr n,
            ref nexvitad_bank_options options, ProgressCallback cb, IntPtr user, out BankHandle bank);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_save(BankHandle bank, byte[] path);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_load(ModelHandle model, byte[] path, out BankHandle bank);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_get_info(BankHandle bank, ref nexvitad_bank_info info);

        /// <summary>Takes the raw pointer: only <see cref="BankHandle.ReleaseHandle"/> calls it.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_free(IntPtr bank);

        /// <summary><paramref name="out_"/>: <paramref name="out_len"/> bytes (revision 4).</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_get_roi(BankHandle bank, [Out] byte[] out_, UIntPtr out_len);

        /// <summary>A new bank at another target FPR (revision 4); <paramref name="bank"/> is unchanged.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_recalibrate(BankHandle bank, float target_fpr, out BankHandle out_);

        /// <summary>A new bank: <paramref name="bank"/> with <paramref name="n"/> more good images (revision 5);
        /// <paramref name="bank"/> is unchanged.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_add(BankHandle bank, [In] nexvitad_image[] images, UIntPtr n,
            ProgressCallback cb, IntPtr user, out BankHandle out_);

        /// <summary>A new bank from the images of <paramref name="a"/> then <paramref name="b"/> (revision 5);
        /// both are unchanged.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_bank_merge(BankHandle a, BankHandle b, ProgressCallback cb, IntPtr user,
            out BankHandle out_);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score(ModelHandle model, BankHandle bank, ref nexvitad_image image,
            IntPtr map_out, UIntPtr map_len, ref nexvitad_result result);

        /// <summary>nexvitad_score with <paramref name="model"/> = IntPtr.Zero: the bank's own model (revision 2).</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score(IntPtr model, BankHandle bank, ref nexvitad_image image,
            IntPtr map_out, UIntPtr map_len, ref nexvitad_result result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score_batch(ModelHandle model, BankHandle bank, [In] nexvitad_image[] images,
            UIntPtr n, [In] IntPtr[] maps_out, [In] UIntPtr[] map_lens, [In, Out] nexvitad_result[] results);

        /// <summary>nexvitad_score_batch with per-call options for every image (revision 5); each result's
        /// region_count counts that image's regions.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score_batch_with_options(ModelHandle model, BankHandle bank,
            [In] nexvitad_image[] images, UIntPtr n, ref nexvitad_score_options options, [In] IntPtr[] maps_out,
            [In] UIntPtr[] map_lens, [In, Out] nexvitad_result[] results);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern uint nexvitad_abi_revision();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score_options_default(ref nexvitad_score_options options);

        /// <summary><paramref name="regions"/>: NULL or <paramref name="regions_cap"/> nexvitad_region;
        /// <paramref name="region_count"/>: NULL (no regions) or a size_t.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score_with_options(ModelHandle model, BankHandle bank, ref nexvitad_image image,
            ref nexvitad_score_options options, IntPtr map_out, UIntPtr map_len, IntPtr regions, UIntPtr regions_cap,
            IntPtr region_count, ref nexvitad_result result);

        /// <summary>nexvitad_score_with_options with <paramref name="model"/> = IntPtr.Zero: the bank's own model.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_score_with_options(IntPtr model, BankHandle bank, ref nexvitad_image image,
            ref nexvitad_score_options options, IntPtr map_out, UIntPtr map_len, IntPtr regions, UIntPtr regions_cap,
            IntPtr region_count, ref nexvitad_result result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_train_options_default(ref nexvitad_train_options options);

        /// <summary><paramref name="sources"/> holds unmanaged NUL-terminated UTF-8 strings.</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Status nexvitad_train(ModelHandle model, byte[] data_root, [In] IntPtr[] sources, UIntPtr n_sources,
            byte[] target, byte[] out_dir, ref nexvitad_train_options options, TrainProgressCallback cb, IntPtr user,
            ref nexvitad_train_result result);

        /// <summary>Marshal.SizeOf as a size_t, for the struct_size fields.</summary>
        public static UIntPtr SizeOf<T>() where T : struct
        {
            return (UIntPtr)(uint)Marshal.SizeOf(typeof(T));
        }
    }
}
