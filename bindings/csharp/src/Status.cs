using System;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>The C ABI's nexvitad_status: one class of failure per value.</summary>
    public enum Status
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>An argument is null, out of range or malformed (the message names it).</summary>
        InvalidArgument = 1,
        /// <summary>A file or folder could not be read or written.</summary>
        Io = 2,
        /// <summary>A file exists but is corrupt, truncated or of the wrong kind.</summary>
        Format = 3,
        /// <summary>Two things that must belong together do not (a bank built by another model).</summary>
        Mismatch = 4,
        /// <summary>ONNX Runtime could not be loaded or failed while running the model.</summary>
        Runtime = 5,
        /// <summary>The request needs something this build or machine lacks (e.g. CUDA).</summary>
        Unsupported = 6,
        /// <summary>A configured limit (image size, bank size) would be exceeded.</summary>
        LimitExceeded = 7,
        /// <summary>A progress callback cancelled the call (surfaced as OperationCanceledException).</summary>
        Cancelled = 8,
        /// <summary>A bug in nexvitad; the message says where.</summary>
        Internal = 9,
    }

    /// <summary>
    /// A failure reported by libnexvitad. <see cref="Status"/> says which kind (switch on it, e.g.
    /// <c>catch (NexVitadException e) when (e.Status == Status.Mismatch)</c>); the message is the
    /// library's, naming the offending argument, file or limit.
    /// Mistakes the binding can see before calling native code (null, empty or too-small buffers,
    /// disposed objects, a cancelled token) raise the usual ArgumentException,
    /// ObjectDisposedException and OperationCanceledException instead.
    /// </summary>
    public class NexVitadException : Exception
    {
        /// <summary>The status the C call returned.</summary>
        public Status Status { get; }

        /// <summary>The C name of <see cref="Status"/>, e.g. "NEXVITAD_MISMATCH".</summary>
        public string StatusName => Errors.StatusName(Status);

        /// <summary>Creates an exception for a status and the library's message.</summary>
        public NexVitadException(Status status, string message) : base(message)
        {
            Status = status;
        }

        /// <inheritdoc/>
        public override string ToString()
        {
            return StatusName + ": " + base.ToString();
        }
    }

    /// <summary>Turns C statuses into exceptions.</summary>
    internal static class Errors
    {
        /// <summary>
        /// Throws for a failed call. Must run on the thread that made the call, right after it:
        /// nexvitad_last_error() is per thread and overwritten by the next call.
        /// </summary>
        public static void Check(Status status)
        {
            if (status == Status.Ok)
                return;
            string message = Utf8.FromNative(NativeMethods.nexvitad_last_error());
            if (string.IsNullOrEmpty(message))
                message = StatusName(status);
            if (status == Status.Cancelled)
                throw new OperationCanceledException(message);
            throw new NexVitadException(status, message);
        }

        public static string StatusName(Status status)
        {
            return Utf8.FromNative(NativeMethods.nexvitad_status_name((int)status));
        }

        /// <summary>Fails early, with the library's promise in mind, if the loaded library speaks another ABI.</summary>
        public static void CheckAbi()
        {
            uint abi = NativeMethods.nexvitad_abi_version();
            if (abi != NativeMethods.AbiVersion)
                throw new NexVitadException(Status.Unsupported,
                    "libnexvitad has C ABI version " + abi + " but this binding needs " + NativeMethods.AbiVersion);
        }
    }
}
