using System;
using System.Runtime.InteropServices;
using System.Text;

namespace NexVitad
{
    /// <summary>UTF-8 conversions for the C ABI, done by hand because the marshaller's "Ansi" is not UTF-8 everywhere.</summary>
    internal static class Utf8
    {
        /// <summary>A NUL-terminated UTF-8 copy of a non-empty path without embedded NULs.</summary>
        public static byte[] Path(string value, string paramName)
        {
            if (value == null)
                throw new ArgumentNullException(paramName);
            if (value.Length == 0)
                throw new ArgumentException("the path is empty", paramName);
            if (value.IndexOf('\0') >= 0)
                throw new ArgumentException("the path contains a NUL character", paramName);
            return ToNative(value);
        }

        public static byte[] ToNative(string value)
        {
            int n = Encoding.UTF8.GetByteCount(value);
            byte[] bytes = new byte[n + 1];
            Encoding.UTF8.GetBytes(value, 0, value.Length, bytes, 0);
            return bytes;
        }

        /// <summary>Copies a NUL-terminated UTF-8 string owned by the library; null for a null pointer.</summary>
        public static unsafe string FromNative(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return null;
            byte* s = (byte*)p;
            int n = 0;
            while (s[n] != 0)
                n++;
            return Encoding.UTF8.GetString(s, n);
        }

        /// <summary>Allocates an unmanaged NUL-terminated UTF-8 copy (IntPtr.Zero for null); free with Marshal.FreeHGlobal.</summary>
        public static IntPtr Alloc(string value)
        {
            if (value == null)
                return IntPtr.Zero;
            byte[] bytes = ToNative(value);
            IntPtr p = Marshal.AllocHGlobal(bytes.Length);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            return p;
        }
    }
}
