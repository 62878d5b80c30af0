using System;
using System.Buffers;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// Caller pixels with their layout: 8-bit <see cref="PixelFormat"/>, <see cref="Width"/> x
    /// <see cref="Height"/>, rows <see cref="Stride"/> bytes apart (0 = tightly packed). The
    /// pixels are not copied; the library reads them only during a call. Validated on
    /// construction, so a buffer too small for its layout never reaches native code.
    /// </summary>
    public sealed class ImageBuffer
    {
        /// <summary>The pixels, starting at the first byte of the top row.</summary>
        public ReadOnlyMemory<byte> Pixels { get; }
        /// <summary>Width in pixels.</summary>
        public int Width { get; }
        /// <summary>Height in pixels.</summary>
        public int Height { get; }
        /// <summary>Bytes from one row to the next (never 0: a packed image reports width x bytes per pixel).</summary>
        public int Stride { get; }
        /// <summary>The pixel layout.</summary>
        public PixelFormat Format { get; }

        /// <summary>Wraps pixels (an array slice, pooled or native memory) without copying.</summary>
        /// <param name="pixels">At least <c>stride * (height - 1) + width * bytesPerPixel</c> bytes.</param>
        /// <param name="width">Width in pixels, &gt; 0.</param>
        /// <param name="height">Height in pixels, &gt; 0.</param>
        /// <param name="format">The pixel layout.</param>
        /// <param name="stride">Bytes from one row to the next; 0 = <c>width * bytesPerPixel</c>.</param>
        public ImageBuffer(ReadOnlyMemory<byte> pixels, int width, int height, PixelFormat format, int stride = 0)
        {
            Stride = ImageLayout.Validate(pixels.Length, width, height, format, stride, nameof(pixels));
            Pixels = pixels;
            Width = width;
            Height = height;
            Format = format;
        }

        /// <summary>Wraps <paramref name="pixels"/> from <paramref name="offset"/> without copying.</summary>
        public ImageBuffer(byte[] pixels, int offset, int width, int height, PixelFormat format, int stride = 0)
            : this(ImageLayout.Slice(pixels, offset), width, height, format, stride) { }

        /// <summary>Wraps a whole array without copying.</summary>
        public ImageBuffer(byte[] pixels, int width, int height, PixelFormat format, int stride = 0)
            : this(pixels, 0, width, height, format, stride) { }

        /// <summary>Pins the pixels and describes them for the C ABI; dispose the handle after the call.</summary>
        internal unsafe MemoryHandle Pin(out nexvitad_image native)
        {
            MemoryHandle pin = Pixels.Pin();
            native = ImageLayout.Native((IntPtr)pin.Pointer, Width, Height, Stride, Format);
            return pin;
        }
    }

    /// <summary>The image checks shared by every overload.</summary>
    internal static class ImageLayout
    {
        /// <summary>
        /// Checks that <paramref name="length"/> bytes hold the image and returns the effective
        /// stride. These checks are what keeps native code inside the caller's buffer: the C ABI
        /// cannot know how long a buffer is.
        /// </summary>
        public static int Validate(int length, int width, int height, PixelFormat format, int stride, string paramName)
        {
            int bpp = PixelFormats.BytesPerPixel(format, nameof(format));
            if (width <= 0)
                throw new ArgumentOutOfRangeException(nameof(width), width, "the image width must be > 0");
            if (height <= 0)
                throw new ArgumentOutOfRangeException(nameof(height), height, "the image height must be > 0");
            if (length == 0)
                throw new ArgumentException("the image is empty (no pixel bytes)", paramName);
            long row = (long)width * bpp;
            if (stride < 0)
                throw new ArgumentOutOfRangeException(nameof(stride), stride, "the stride must be >= 0 (0 = packed rows)");
            if (stride != 0 && stride < row)
                throw new ArgumentException("the stride " + stride + " is smaller than one row (" + width + " px x "
                    + bpp + " bytes = " + row + ")", nameof(stride));
            long effective = stride == 0 ? row : stride;
            if (effective > int.MaxValue)
                throw new ArgumentOutOfRangeException(nameof(width), width, "one row is larger than 2 GiB");
            long needed = effective * (height - 1) + row;
            if (length < needed)
                throw new ArgumentException("the buffer holds " + length + " bytes but a " + width + "x" + height + " "
                    + format + " image with stride " + effective + " needs " + needed, paramName);
            return (int)effective;
        }

        public static ReadOnlyMemory<byte> Slice(byte[] pixels, int offset)
        {
            if (pixels == null)
                throw new ArgumentNullException(nameof(pixels));
            if (offset < 0 || offset > pixels.Length)
                throw new ArgumentOutOfRangeException(nameof(offset), offset, "the offset is outside the " + pixels.Length + "-byte array");
            return new ReadOnlyMemory<byte>(pixels, offset, pixels.Length - offset);
        }

        public static nexvitad_image Native(IntPtr data, int width, int height, int stride, PixelFormat format)
        {
            return new nexvitad_image
            {
                data = data,
                width = (uint)width,
                height = (uint)height,
                stride = (UIntPtr)(uint)stride,
                format = (uint)format,
            };
        }
    }
}
