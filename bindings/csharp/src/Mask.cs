using System;
using System.Buffers;
using NexVitad.Native;

namespace NexVitad
{
    /// <summary>
    /// A region-of-interest mask (nexvitad_mask, C ABI revision 4): one byte per pixel, non-zero =
    /// inspect, 0 = ignore (a label, a fixture, the background). Any size: the library scales it to each
    /// image (nearest neighbour), so one mask drawn at the camera's resolution serves every image of that
    /// camera. The bytes are not copied here; they are pinned during each call that reads them (the
    /// library copies what it keeps: a bank's default ROI). Validated on construction, so a buffer too
    /// small for its size never reaches native code; a mask that selects no pixel (all zero) is refused by
    /// the library (<see cref="NexVitadException"/> with <see cref="Status.InvalidArgument"/>, naming
    /// options-&gt;roi).
    /// </summary>
    public readonly struct Mask
    {
        /// <summary>The bytes, starting at the first byte of the top row.</summary>
        public ReadOnlyMemory<byte> Data { get; }
        /// <summary>Width in pixels (0 only for <c>default(Mask)</c>, which no call accepts).</summary>
        public int Width { get; }
        /// <summary>Height in pixels.</summary>
        public int Height { get; }
        /// <summary>Bytes from one row to the next (never 0: a packed mask reports its width).</summary>
        public int Stride { get; }

        /// <summary>Wraps mask bytes (an array slice, pooled or native memory) without copying.</summary>
        /// <param name="data">At least <c>stride * (height - 1) + width</c> bytes.</param>
        /// <param name="width">Width in pixels, &gt; 0.</param>
        /// <param name="height">Height in pixels, &gt; 0.</param>
        /// <param name="stride">Bytes from one row to the next; 0 = <paramref name="width"/>.</param>
        /// <exception cref="ArgumentOutOfRangeException">A width or height &lt;= 0, a negative stride.</exception>
        /// <exception cref="ArgumentException">A stride below the width, or too few bytes.</exception>
        public Mask(ReadOnlyMemory<byte> data, int width, int height, int stride = 0)
        {
            if (width <= 0)
                throw new ArgumentOutOfRangeException(nameof(width), width, "the mask width must be > 0");
            if (height <= 0)
                throw new ArgumentOutOfRangeException(nameof(height), height, "the mask height must be > 0");
            if (stride < 0)
                throw new ArgumentOutOfRangeException(nameof(stride), stride, "the stride must be >= 0 (0 = packed rows)");
            if (stride != 0 && stride < width)
                throw new ArgumentException("the stride " + stride + " is smaller than the mask width " + width, nameof(stride));
            int effective = stride == 0 ? width : stride;
            long needed = (long)effective * (height - 1) + width;
            if (data.Length < needed)
                throw new ArgumentException("the buffer holds " + data.Length + " bytes but a " + width + "x" + height
                    + " mask with stride " + effective + " needs " + needed, nameof(data));
            Data = data;
            Width = width;
            Height = height;
            Stride = effective;
        }

        /// <summary>Wraps a whole array (row-major, <paramref name="stride"/> 0 = packed) without copying.</summary>
        /// <exception cref="ArgumentNullException"><paramref name="data"/> is null.</exception>
        public Mask(byte[] data, int width, int height, int stride = 0)
            : this(new ReadOnlyMemory<byte>(data ?? throw new ArgumentNullException(nameof(data))), width, height, stride) { }

        /// <summary>"Mask WxH".</summary>
        public override string ToString()
        {
            return "Mask " + Width + "x" + Height;
        }

        /// <summary>
        /// Pins the bytes and describes them for the C ABI; dispose the handle after the call. The
        /// returned struct must itself stay where the C struct pointing at it can reach it (a local).
        /// </summary>
        /// <exception cref="ArgumentException"><c>default(Mask)</c>, which has no bytes.</exception>
        internal unsafe MemoryHandle Pin(string paramName, out nexvitad_mask native)
        {
            if (Width == 0)
                throw new ArgumentException("the mask is empty (default(Mask)); make one with new Mask(bytes, width, height)", paramName);
            MemoryHandle pin = Data.Pin();
            native = new nexvitad_mask
            {
                data = (IntPtr)pin.Pointer,
                width = (uint)Width,
                height = (uint)Height,
                stride = (UIntPtr)(uint)Stride,
            };
            return pin;
        }
    }
}
