using System;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Threading;

namespace NexVitad
{
    /// <summary>
    /// What a long native call (bank build, training) hands its progress callback through the
    /// C ABI's user pointer: the caller's progress sink and cancellation token, and the first
    /// exception a progress handler threw, rethrown by the caller once native code returned
    /// (exceptions must never unwind through native frames).
    /// </summary>
    internal sealed class CallbackState<T>
    {
        public readonly IProgress<T> Progress;
        public readonly CancellationToken Token;
        public ExceptionDispatchInfo Error;

        public CallbackState(IProgress<T> progress, CancellationToken token)
        {
            Progress = progress;
            Token = token;
        }

        /// <summary>
        /// The body of a native progress callback for the state behind <paramref name="user"/>:
        /// 1 (cancel) once cancelled or once a handler threw, else reports <paramref name="make"/>()
        /// and returns 0. Never throws.
        /// </summary>
        public static int Report(IntPtr user, Func<T> make)
        {
            CallbackState<T> state = null;
            try
            {
                state = (CallbackState<T>)GCHandle.FromIntPtr(user).Target;
                if (state.Error != null || state.Token.IsCancellationRequested)
                    return 1;
                if (state.Progress != null)
                    state.Progress.Report(make());
                return state.Token.IsCancellationRequested ? 1 : 0;
            }
            catch (Exception e)
            {
                if (state != null)
                    state.Error = ExceptionDispatchInfo.Capture(e);
                return 1;
            }
        }
    }
}
