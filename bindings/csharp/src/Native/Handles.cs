using System;
using System.Runtime.InteropServices;

namespace NexVitad.Native
{
    /// <summary>
    /// Owns one nexvitad_model*. Released exactly once, by Dispose or (as a safety net) the
    /// finalizer; SafeHandle's reference count keeps it alive while any P/Invoke uses it.
    /// </summary>
    public sealed class ModelHandle : SafeHandle
    {
        /// <summary>Used by the marshaller for out parameters.</summary>
        public ModelHandle() : base(IntPtr.Zero, true) { }

        /// <inheritdoc/>
        public override bool IsInvalid => handle == IntPtr.Zero;

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            return NativeMethods.nexvitad_model_free(handle) == Status.Ok;
        }
    }

    /// <summary>Owns one nexvitad_bank*; see <see cref="ModelHandle"/>.</summary>
    public sealed class BankHandle : SafeHandle
    {
        /// <summary>Used by the marshaller for out parameters.</summary>
        public BankHandle() : base(IntPtr.Zero, true) { }

        /// <inheritdoc/>
        public override bool IsInvalid => handle == IntPtr.Zero;

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            return NativeMethods.nexvitad_bank_free(handle) == Status.Ok;
        }
    }
}
