using System;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>Process-wide facts and settings of libnexvitad.</summary>
    public static class Library
    {
        /// <summary>The loaded library's version, e.g. "0.1.0".</summary>
        public static string Version => Utf8.FromNative(NativeMethods.nexvitad_version());

        /// <summary>The loaded library's C ABI version; this binding needs <see cref="NativeMethods.AbiVersion"/>.</summary>
        public static int AbiVersion => (int)NativeMethods.nexvitad_abi_version();

        /// <summary>The loaded library's C ABI revision (2 and up: <see cref="MemoryBank.Score(ImageBuffer, bool)"/>
        /// and the option "use the default" rule).</summary>
        public static int AbiRevision => (int)NativeMethods.nexvitad_abi_revision();

        private static readonly object s_lock = new object();
        private static readonly LogCallback s_onLog = OnLog;
        private static volatile Action<LogLevel, string> s_logger;

        /// <summary>
        /// Routes the library's log messages (Info when a model opens or a bank is built, loaded or
        /// saved; Warn when K-means stopped without converging) to <paramref name="logger"/>, or
        /// stops with null. The logger may be called from several threads at once; exceptions it
        /// throws are dropped, since they cannot cross native code. Do not call from inside the logger.
        /// </summary>
        public static void SetLogger(Action<LogLevel, string> logger)
        {
            lock (s_lock)
            {
                if (logger == null)
                {
                    Errors.Check(NativeMethods.nexvitad_set_log_callback(null, IntPtr.Zero));
                    s_logger = null;
                }
                else
                {
                    s_logger = logger;
                    Errors.Check(NativeMethods.nexvitad_set_log_callback(s_onLog, IntPtr.Zero));
                }
            }
        }

        private static void OnLog(IntPtr user, int level, IntPtr message)
        {
            try
            {
                Action<LogLevel, string> logger = s_logger;
                if (logger != null)
                    logger((LogLevel)level, Utf8.FromNative(message));
            }
            catch
            {
                // Must not unwind into native code; a failing logger loses its message.
            }
        }
    }
}
