// Tests of the C# binding against a real libnexvitad and the tiny model.
//
//   mono Tests.exe --model models/tiny --fixtures tests/fixtures/crosslang [--layout layout.txt]
//
// A tiny runner (no NUnit on Debian's mono): each test is a method that throws on failure; the
// last line is exactly "N passed, M failed" and the exit code is non-zero if any failed.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using NexVitad;
using NexVitad.Native;

namespace NexVitad.Tests
{
    internal sealed class AssertionFailed : Exception
    {
        public AssertionFailed(string message) : base(message) { }
    }

    internal static class Assert
    {
        public static void True(bool condition, string what)
        {
            if (!condition) throw new AssertionFailed(what);
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertionFailed(what + ": expected <" + expected + "> but got <" + actual + ">");
        }

        /// <summary>Runs <paramref name="action"/> and demands an exception of exactly type T.</summary>
        public static T Throws<T>(Action action, string what) where T : Exception
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                if (e.GetType() == typeof(T))
                    return (T)e;
                throw new AssertionFailed(what + ": expected " + typeof(T).Name + " but got " + e.GetType().Name + ": " + e.Message);
            }
            throw new AssertionFailed(what + ": expected " + typeof(T).Name + " but nothing was thrown");
        }

        public static NexVitadException Status(Status status, Action action, string what)
        {
            NexVitadException e = Throws<NexVitadException>(action, what);
            Equal(status, e.Status, what + " (status; message: " + e.Message + ")");
            return e;
        }
    }

    /// <summary>One image scored: the bits that must match across runs and threads.</summary>
    internal struct Outcome : IEquatable<Outcome>
    {
        public uint ScoreBits;
        public uint ThresholdBits;
        public bool Anomalous;
        public string MapSha256;

        public static Outcome Of(ScoreResult r)
        {
            return new Outcome
            {
                ScoreBits = Fixture.Bits(r.ImageScore),
                ThresholdBits = Fixture.Bits(r.ImageThreshold),
                Anomalous = r.IsAnomalous,
                MapSha256 = r.HasMap ? Fixture.Sha256(r.Map) : null,
            };
        }

        public bool Equals(Outcome o)
        {
            return ScoreBits == o.ScoreBits && ThresholdBits == o.ThresholdBits && Anomalous == o.Anomalous && MapSha256 == o.MapSha256;
        }

        public override bool Equals(object o) { return o is Outcome && Equals((Outcome)o); }
        public override int GetHashCode() { return (int)ScoreBits; }
        public override string ToString() { return ScoreBits.ToString("x8") + "/" + ThresholdBits.ToString("x8") + "/" + Anomalous + "/" + MapSha256; }
    }

    /// <summary>The shared cross-language fixture and images derived from it.</summary>
    internal sealed class Fixture
    {
        public readonly string ModelDir;
        public readonly string Dir;
        public readonly byte[] Rgb;
        public readonly int Width;
        public readonly int Height;
        public readonly Dictionary<string, string> Expected;
        /// <summary>expected_tiled.json: the same image scored with tiled.bank (its scalar members).</summary>
        public readonly Dictionary<string, string> ExpectedTiled;
        /// <summary>expected_tiled.json's "regions": scored at regions_pixel_threshold_bits, in order.</summary>
        public readonly List<Dictionary<string, string>> ExpectedRegions;
        /// <summary>expected_roi.json (revision 4): the image scored with roi.bank (its own ROI), plus roi_width/height,
        /// caller_roi_* (tiny.bank with roi.mask per call) and ignore_roi_* (roi.bank with IgnoreBankRoi).</summary>
        public readonly Dictionary<string, string> ExpectedRoi;
        /// <summary>roi.mask: roi_width x roi_height bytes, row-major, 1 = inspect.</summary>
        public readonly byte[] RoiMask;
        /// <summary>expected_grow.json (revision 5): the image scored with grow2.bank after grow_add.rgb was added,
        /// plus grow_add_width/height, the grown bank's shots and pixel_threshold_bits.</summary>
        public readonly Dictionary<string, string> ExpectedGrow;
        /// <summary>grow_add.rgb: packed RGB8, grow_add_width x grow_add_height.</summary>
        public readonly byte[] GrowAddRgb;

        public Fixture(string modelDir, string dir)
        {
            ModelDir = modelDir;
            Dir = dir;
            Expected = ParseFlatJson(File.ReadAllText(Path.Combine(dir, "expected.json")));
            Width = int.Parse(Expected["width"], CultureInfo.InvariantCulture);
            Height = int.Parse(Expected["height"], CultureInfo.InvariantCulture);
            string tiled = File.ReadAllText(Path.Combine(dir, "expected_tiled.json"));
            ExpectedRegions = ParseObjectArray(ref tiled, "regions");
            ExpectedTiled = ParseFlatJson(tiled);
            ExpectedRoi = ParseFlatJson(File.ReadAllText(Path.Combine(dir, "expected_roi.json")));
            RoiMask = File.ReadAllBytes(Path.Combine(dir, "roi.mask"));
            ExpectedGrow = ParseFlatJson(File.ReadAllText(Path.Combine(dir, "expected_grow.json")));
            GrowAddRgb = File.ReadAllBytes(Path.Combine(dir, "grow_add.rgb"));
            Rgb = File.ReadAllBytes(Path.Combine(dir, "image.rgb"));
            if (Expected["format"] != "rgb8" || Rgb.Length != Width * Height * 3)
                throw new InvalidDataException("image.rgb is not the " + Width + "x" + Height + " rgb8 image expected.json describes");
        }

        public string BankPath => Path.Combine(Dir, "tiny.bank");

        /// <summary>48 px tiles at overlap 0.25, one shared bank (expected_tiled.json).</summary>
        public string TiledBankPath => Path.Combine(Dir, "tiled.bank");

        /// <summary>tiny.bank's settings built with roi.mask as its default ROI (expected_roi.json).</summary>
        public string RoiBankPath => Path.Combine(Dir, "roi.bank");

        /// <summary>A growable bank (k 8) of two good images (expected_grow.json).</summary>
        public string Grow2BankPath => Path.Combine(Dir, "grow2.bank");

        public int GrowAddWidth => int.Parse(ExpectedGrow["grow_add_width"], CultureInfo.InvariantCulture);
        public int GrowAddHeight => int.Parse(ExpectedGrow["grow_add_height"], CultureInfo.InvariantCulture);

        /// <summary>grow_add.rgb as an image: the third good image of the growth fixture.</summary>
        public ImageBuffer GrowAdd => new ImageBuffer(GrowAddRgb, GrowAddWidth, GrowAddHeight, PixelFormat.Rgb8);

        public int RoiWidth => int.Parse(ExpectedRoi["roi_width"], CultureInfo.InvariantCulture);
        public int RoiHeight => int.Parse(ExpectedRoi["roi_height"], CultureInfo.InvariantCulture);

        /// <summary>
        /// Cuts the array of flat objects named <paramref name="key"/> out of <paramref name="text"/> (so the flat
        /// reader below does not take a region's "width" for the image's) and parses its objects.
        /// Mono has no System.Text.Json; the fixture's arrays are one level of flat objects.
        /// </summary>
        public static List<Dictionary<string, string>> ParseObjectArray(ref string text, string key)
        {
            var list = new List<Dictionary<string, string>>();
            Match m = Regex.Match(text, "\"" + Regex.Escape(key) + "\"\\s*:\\s*\\[([^\\]]*)\\]");
            if (!m.Success)
                return list;
            foreach (Match o in Regex.Matches(m.Groups[1].Value, "\\{[^}]*\\}"))
                list.Add(ParseFlatJson(o.Value));
            text = text.Remove(m.Index, m.Length);
            return list;
        }

        /// <summary>Reads a one-level JSON object of strings, numbers and booleans (expected.json, or one region).</summary>
        public static Dictionary<string, string> ParseFlatJson(string text)
        {
            var d = new Dictionary<string, string>();
            foreach (Match m in Regex.Matches(text, "\"([^\"]+)\"\\s*:\\s*(\"([^\"]*)\"|[^,}\\s]+)"))
                d[m.Groups[1].Value] = m.Groups[3].Success ? m.Groups[3].Value : m.Groups[2].Value;
            return d;
        }

        public static uint Bits(float f)
        {
            return BitConverter.ToUInt32(BitConverter.GetBytes(f), 0);
        }

        /// <summary>SHA-256 of the floats' little-endian bytes, lowercase hex.</summary>
        public static string Sha256(ReadOnlySpan<float> values)
        {
            byte[] bytes = MemoryMarshal.AsBytes(values).ToArray();
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < bytes.Length; i += 4)
                    Array.Reverse(bytes, i, 4);
            using (SHA256 sha = SHA256.Create())
                return string.Concat(sha.ComputeHash(bytes).Select(b => b.ToString("x2")));
        }

        /// <summary>A packed RGB crop of the fixture image.</summary>
        public byte[] Crop(int x0, int y0, int w, int h)
        {
            var o = new byte[w * h * 3];
            for (int y = 0; y < h; y++)
                Buffer.BlockCopy(Rgb, ((y0 + y) * Width + x0) * 3, o, y * w * 3, w * 3);
            return o;
        }

        /// <summary>The fixture image mirrored left-right.</summary>
        public byte[] Mirrored()
        {
            var o = new byte[Rgb.Length];
            for (int y = 0; y < Height; y++)
                for (int x = 0; x < Width; x++)
                    Buffer.BlockCopy(Rgb, (y * Width + x) * 3, o, (y * Width + Width - 1 - x) * 3, 3);
            return o;
        }

        /// <summary>Normal images for building banks: overlapping crops of the fixture image.</summary>
        public List<ImageBuffer> GoodImages()
        {
            return new List<ImageBuffer>
            {
                new ImageBuffer(Crop(0, 0, 80, 64), 80, 64, PixelFormat.Rgb8),
                new ImageBuffer(Crop(16, 8, 80, 64), 80, 64, PixelFormat.Rgb8),
                new ImageBuffer(Crop(8, 4, 80, 64), 80, 64, PixelFormat.Rgb8),
                new ImageBuffer(Crop(4, 6, 64, 64), 64, 64, PixelFormat.Rgb8),
            };
        }

        public ImageBuffer Image => new ImageBuffer(Rgb, Width, Height, PixelFormat.Rgb8);
    }

    internal static class Program
    {
        private static Fixture F;
        private static Model M;
        private static MemoryBank B;
        private static string Temp;
        private static string LayoutFile;
        /// <summary>The synthetic training set (tests/fixtures/train/data; default: beside --fixtures).</summary>
        private static string TrainRoot;

        private static int Main(string[] args)
        {
            string model = null, fixtures = null;
            for (int i = 0; i + 1 < args.Length; i += 2)
            {
                if (args[i] == "--model") model = args[i + 1];
                else if (args[i] == "--fixtures") fixtures = args[i + 1];
                else if (args[i] == "--layout") LayoutFile = args[i + 1];
                else if (args[i] == "--train-data") TrainRoot = args[i + 1];
                else { Console.Error.WriteLine("unknown argument " + args[i]); return 2; }
            }
            if (model == null || fixtures == null)
            {
                Console.Error.WriteLine("usage: Tests.exe --model DIR --fixtures DIR [--layout FILE] [--train-data DIR]");
                return 2;
            }
            F = new Fixture(model, fixtures);
            if (TrainRoot == null)
                TrainRoot = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(fixtures).TrimEnd('/')), "train", "data");
            Temp = Path.Combine(Path.GetTempPath(), "nexvitad-cs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Temp);

            var tests = typeof(Program).GetMethods(BindingFlags.NonPublic | BindingFlags.Static)
                .Where(m => m.Name.StartsWith("Test_", StringComparison.Ordinal))
                .OrderBy(m => m.MetadataToken)
                .ToList();
            int passed = 0, failed = 0;
            try
            {
                M = Model.Open(F.ModelDir);
                B = M.LoadBank(F.BankPath);
                foreach (MethodInfo t in tests)
                {
                    string name = t.Name.Substring(5);
                    var watch = System.Diagnostics.Stopwatch.StartNew();
                    try
                    {
                        t.Invoke(null, null);
                        passed++;
                        Console.WriteLine("ok   " + name + " (" + watch.ElapsedMilliseconds + " ms)");
                    }
                    catch (TargetInvocationException e)
                    {
                        failed++;
                        Exception inner = e.InnerException;
                        Console.WriteLine("FAIL " + name + ": " + (inner is AssertionFailed ? inner.Message : inner.ToString()));
                    }
                }
            }
            finally
            {
                B?.Dispose();
                M?.Dispose();
                try { Directory.Delete(Temp, true); } catch (IOException) { }
            }
            Console.WriteLine(passed + " passed, " + failed + " failed");
            return failed == 0 ? 0 : 1;
        }

        // ---- the native layer ------------------------------------------------------------

        private static void Test_StructLayoutMatchesC()
        {
            if (LayoutFile == null)
                throw new AssertionFailed("run with --layout FILE (the output of tests/layout.c)");
            var c = new Dictionary<string, long>();
            foreach (string line in File.ReadAllLines(LayoutFile))
            {
                string[] p = line.Split(' ');
                c[p[0] + " " + p[1]] = long.Parse(p[2], CultureInfo.InvariantCulture);
            }
            Type[] structs = { typeof(nexvitad_options), typeof(nexvitad_bank_options), typeof(nexvitad_mask), typeof(nexvitad_image),
                typeof(nexvitad_bank_info), typeof(nexvitad_result), typeof(nexvitad_score_options), typeof(nexvitad_region),
                typeof(nexvitad_train_options), typeof(nexvitad_train_progress), typeof(nexvitad_train_result) };
            // The enum constants the C# enums mirror ("enum NAME value"), then the struct lines.
            var enums = c.Keys.Where(k => k.StartsWith("enum ", StringComparison.Ordinal)).ToList();
            Assert.Equal(c["enum NEXVITAD_TILE_SHARED"], (long)TileLayout.Shared, "TileLayout.Shared");
            Assert.Equal(c["enum NEXVITAD_TILE_PER_POSITION"], (long)TileLayout.PerPosition, "TileLayout.PerPosition");
            Assert.Equal(c["enum NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER"], (long)ThresholdSource.ImageFromCaller, "ThresholdSource.ImageFromCaller");
            Assert.Equal(c["enum NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER"], (long)ThresholdSource.PixelFromCaller, "ThresholdSource.PixelFromCaller");
            Assert.Equal(c["enum NEXVITAD_ROI_NONE"], (long)RoiSource.None, "RoiSource.None");
            Assert.Equal(c["enum NEXVITAD_ROI_FROM_BANK"], (long)RoiSource.FromBank, "RoiSource.FromBank");
            Assert.Equal(c["enum NEXVITAD_ROI_FROM_CALLER"], (long)RoiSource.FromCaller, "RoiSource.FromCaller");
            Assert.Equal(7, enums.Count, "enum constants in the layout file");
            foreach (string e in enums)
                c.Remove(e);
            int fields = 0;
            foreach (Type t in structs)
            {
                Assert.Equal(c[t.Name + " sizeof"], (long)Marshal.SizeOf(t), t.Name + " size");
                foreach (FieldInfo f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
                {
                    long offset;
                    Assert.True(c.TryGetValue(t.Name + " " + f.Name, out offset), t.Name + "." + f.Name + " is not in the C layout");
                    Assert.Equal(offset, (long)Marshal.OffsetOf(t, f.Name), t.Name + "." + f.Name + " offset");
                    fields++;
                }
            }
            Assert.Equal(c.Count - structs.Length, fields, "every C field has a C# twin");
        }

        private static void Test_VersionAndAbi()
        {
            Assert.True(Regex.IsMatch(Library.Version, "^[0-9]+\\.[0-9]+\\.[0-9]+"), "version looks like x.y.z: " + Library.Version);
            Assert.Equal((int)NativeMethods.AbiVersion, Library.AbiVersion, "ABI version");
        }

        private static void Test_PanicsBecomeInternalStatus()
        {
            Assert.Equal(Status.Internal, NativeMethods.nexvitad_selftest_panic(), "selftest panic status");
            string message = Marshal.PtrToStringAnsi(NativeMethods.nexvitad_last_error());
            Assert.True(message.Contains("deliberate panic"), "message: " + message);
        }

        private static void Test_StatusNamesComeFromTheLibrary()
        {
            var e = new NexVitadException(Status.Mismatch, "m");
            Assert.Equal("NEXVITAD_MISMATCH", e.StatusName, "status name");
            Assert.True(e.ToString().StartsWith("NEXVITAD_MISMATCH: "), "ToString starts with the status: " + e);
        }

        // ---- scoring -----------------------------------------------------------------------

        private static void Test_CrossLanguageFixtureBitExact()
        {
            Assert.True(Regex.IsMatch(M.Fingerprint, "^[0-9a-f]{64}$"), "fingerprint is 64 hex digits: " + M.Fingerprint);
            using (ScoreResult r = M.Score(B, F.Rgb, F.Width, F.Height, PixelFormat.Rgb8))
            {
                Assert.Equal(F.Expected["image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "image_score bits");
                Assert.Equal(F.Expected["image_threshold_bits"], Fixture.Bits(r.ImageThreshold).ToString("x8"), "image_threshold bits");
                Assert.Equal(bool.Parse(F.Expected["is_anomalous"]), r.IsAnomalous, "is_anomalous");
                Assert.Equal(F.Width, r.Width, "map width");
                Assert.Equal(F.Height, r.Height, "map height");
                Assert.Equal(int.Parse(F.Expected["map_len"], CultureInfo.InvariantCulture), r.Map.Length, "map length");
                Assert.Equal(F.Expected["map_sha256"], Fixture.Sha256(r.Map), "map SHA-256");
                Assert.Equal(r.IsAnomalous, r.ImageScore > r.ImageThreshold, "decision = score > threshold");
                Assert.Equal(B.Info.ImageThreshold, r.ImageThreshold, "result threshold = bank info threshold");
                Assert.Equal(B.Info.PixelThreshold, r.PixelThreshold, "pixel threshold = bank info");
                Assert.True(r.Timings.Total > TimeSpan.Zero, "timings are filled in");
                float max = float.MinValue;
                foreach (float v in r.Map) max = Math.Max(max, v);
                Assert.Equal(Fixture.Bits(max), Fixture.Bits(r.ImageScore), "image score = map max (MAX mode)");
                Assert.Equal(r.Map[5 * F.Width + 7], r[7, 5], "indexer is [x, y] row-major");
            }
        }

        private static void Test_EveryImageOverloadAndLayoutScoresTheSame()
        {
            Outcome want;
            using (ScoreResult r = M.Score(B, F.Image)) want = Outcome.Of(r);

            var results = new List<KeyValuePair<string, Func<ScoreResult>>>();
            // byte[] + offset inside a larger array
            byte[] shifted = new byte[F.Rgb.Length + 11];
            Buffer.BlockCopy(F.Rgb, 0, shifted, 7, F.Rgb.Length);
            results.Add(Pair("byte[] offset", () => M.Score(B, shifted, 7, F.Width, F.Height, PixelFormat.Rgb8)));
            results.Add(Pair("span slice", () => M.Score(B, new ReadOnlySpan<byte>(shifted, 7, F.Rgb.Length), F.Width, F.Height, PixelFormat.Rgb8)));
            // padded rows (a stride like a cv::Mat ROI or a bitmap's 4-byte alignment)
            int stride = F.Width * 3 + 13;
            byte[] padded = new byte[stride * F.Height];
            for (int y = 0; y < F.Height; y++)
                Buffer.BlockCopy(F.Rgb, y * F.Width * 3, padded, y * stride, F.Width * 3);
            results.Add(Pair("padded stride", () => M.Score(B, padded, F.Width, F.Height, PixelFormat.Rgb8, stride)));
            results.Add(Pair("ImageBuffer stride", () => M.Score(B, new ImageBuffer(padded, F.Width, F.Height, PixelFormat.Rgb8, stride))));
            results.Add(Pair("ImageBuffer memory", () => M.Score(B, new ImageBuffer(new ReadOnlyMemory<byte>(shifted, 7, F.Rgb.Length), F.Width, F.Height, PixelFormat.Rgb8))));
            // the same pixels as BGR, RGBA, BGRA
            int n = F.Width * F.Height;
            byte[] bgr = new byte[n * 3], rgba = new byte[n * 4], bgra = new byte[n * 4];
            for (int i = 0; i < n; i++)
            {
                byte r = F.Rgb[3 * i], g = F.Rgb[3 * i + 1], b = F.Rgb[3 * i + 2];
                bgr[3 * i] = b; bgr[3 * i + 1] = g; bgr[3 * i + 2] = r;
                rgba[4 * i] = r; rgba[4 * i + 1] = g; rgba[4 * i + 2] = b; rgba[4 * i + 3] = (byte)(i * 7);
                bgra[4 * i] = b; bgra[4 * i + 1] = g; bgra[4 * i + 2] = r; bgra[4 * i + 3] = 255;
            }
            results.Add(Pair("bgr8", () => M.Score(B, bgr, F.Width, F.Height, PixelFormat.Bgr8)));
            results.Add(Pair("rgba8", () => M.Score(B, rgba, F.Width, F.Height, PixelFormat.Rgba8)));
            results.Add(Pair("bgra8", () => M.Score(B, bgra, F.Width, F.Height, PixelFormat.Bgra8)));
            foreach (var kv in results)
                using (ScoreResult r = kv.Value())
                    Assert.Equal(want, Outcome.Of(r), kv.Key);
        }

        private static KeyValuePair<string, Func<ScoreResult>> Pair(string name, Func<ScoreResult> f)
        {
            return new KeyValuePair<string, Func<ScoreResult>>(name, f);
        }

        private static void Test_WithoutMapSameScoreAndNoMap()
        {
            Outcome full;
            using (ScoreResult r = M.Score(B, F.Image)) full = Outcome.Of(r);
            using (ScoreResult r = M.Score(B, F.Image, withMap: false))
            {
                Assert.True(!r.HasMap, "HasMap is false");
                Assert.Equal(full.ScoreBits, Fixture.Bits(r.ImageScore), "score without a map");
                Assert.Throws<InvalidOperationException>(() => { var m = r.Map; }, "Map without a map");
            }
        }

        private static void Test_GrayImageScores()
        {
            byte[] gray = new byte[F.Width * F.Height];
            for (int i = 0; i < gray.Length; i++)
                gray[i] = (byte)((F.Rgb[3 * i] * 299 + F.Rgb[3 * i + 1] * 587 + F.Rgb[3 * i + 2] * 114) / 1000);
            using (ScoreResult r = M.Score(B, gray, F.Width, F.Height, PixelFormat.Gray8))
            {
                Assert.Equal(gray.Length, r.Map.Length, "gray map length");
                Assert.True(!float.IsNaN(r.ImageScore) && r.ImageScore >= 0, "gray score is a distance: " + r.ImageScore);
            }
        }

        private static void Test_BatchEqualsOneAtATime()
        {
            var images = new List<ImageBuffer> { F.Image, new ImageBuffer(F.Mirrored(), F.Width, F.Height, PixelFormat.Rgb8) };
            images.AddRange(F.GoodImages());
            var want = images.Select(img => { using (var r = M.Score(B, img)) return Outcome.Of(r); }).ToList();
            ScoreResult[] batch = M.ScoreBatch(B, images);
            Assert.Equal(images.Count, batch.Length, "batch length");
            for (int i = 0; i < images.Count; i++)
            {
                Assert.Equal(images[i].Width, batch[i].Width, "batch map width " + i);
                Assert.Equal(want[i], Outcome.Of(batch[i]), "batch image " + i);
                batch[i].Dispose();
            }
            ScoreResult[] noMaps = M.ScoreBatch(B, images, withMaps: false);
            for (int i = 0; i < images.Count; i++)
            {
                Assert.True(!noMaps[i].HasMap, "no map " + i);
                Assert.Equal(want[i].ScoreBits, Fixture.Bits(noMaps[i].ImageScore), "batch score without maps " + i);
            }
            Assert.Equal(0, M.ScoreBatch(B, new ImageBuffer[0]).Length, "empty batch");
        }

        // ---- banks -------------------------------------------------------------------------

        private static void Test_BuildSaveLoadRoundTrip()
        {
            var options = new BankOptions { K = 12, Seed = 7, Sigma = 3f };
            Outcome built, loaded;
            string path = Path.Combine(Temp, "built.bank");
            using (MemoryBank bank = M.BuildBank(F.GoodImages(), options))
            {
                BankInfo info = bank.Info;
                Assert.Equal(Scorer.Sinkhorn, info.Scorer, "scorer");
                Assert.Equal(12, info.K, "K");
                Assert.Equal(12L, info.Vectors, "vectors = K prototypes");
                Assert.Equal(4, info.Shots, "shots");
                Assert.Equal(7L, info.Seed, "seed");
                Assert.Equal(3f, info.Sigma, "sigma");
                Assert.True(info.Dim > 0 && info.GridWidth > 0 && info.GridHeight > 0, "dims filled in");
                using (ScoreResult r = M.Score(bank, F.Image)) built = Outcome.Of(r);
                bank.Save(path);
            }
            Assert.True(new FileInfo(path).Length > 0, "bank file written");
            using (MemoryBank bank = M.LoadBank(path))
            {
                Assert.Equal(12, bank.Info.K, "loaded K");
                using (ScoreResult r = M.Score(bank, F.Image)) loaded = Outcome.Of(r);
            }
            Assert.Equal(built, loaded, "loaded bank scores as the built one");
            using (MemoryBank again = M.BuildBank(F.GoodImages(), options))
            using (ScoreResult r = M.Score(again, F.Image))
                Assert.Equal(built, Outcome.Of(r), "building twice gives the same bank");
        }

        private static void Test_BankOptionsReachTheLibrary()
        {
            var defaults = new BankOptions();
            Assert.Equal(Scorer.Sinkhorn, defaults.Scorer, "default scorer");
            Assert.True(defaults.K == null && defaults.Sigma == null && defaults.TargetFpr == null, "model defaults are null");
            var options = new BankOptions { Scorer = Scorer.Full, Augment = Augment.HorizontalFlip, Seed = -3 };
            using (MemoryBank bank = M.BuildBank(F.GoodImages().Take(2), options))
            {
                BankInfo info = bank.Info;
                Assert.Equal(Scorer.Full, info.Scorer, "scorer");
                Assert.Equal(Augment.HorizontalFlip, info.Augment, "augment");
                Assert.Equal(-3L, info.Seed, "seed round-trips through uint64");
                Assert.Equal(2L * 2 * info.GridWidth * info.GridHeight, info.Vectors, "full bank = images x copies x patches");
            }
            var bad = new BankOptions { Epsilon = -1f };
            NexVitadException e = Assert.Status(Status.InvalidArgument, () => M.BuildBank(F.GoodImages(), bad), "negative epsilon");
            Assert.True(e.Message.Contains("epsilon"), "message names epsilon: " + e.Message);
            Assert.Status(Status.InvalidArgument, () => M.BuildBank(F.GoodImages(), new BankOptions { K = 100000 }), "K above the patches");
            // 0 is "the default" here as in C and Go, read back as the value it stands for.
            var zeros = new BankOptions { BatchSize = 0, MaxIterations = 0 };
            Assert.Equal(new BankOptions().BatchSize, zeros.BatchSize, "BatchSize 0 = the default");
            Assert.Equal(4, zeros.BatchSize, "the default batch size");
            Assert.Equal(50, zeros.MaxIterations, "MaxIterations 0 = the default");
            Assert.Throws<ArgumentOutOfRangeException>(() => new BankOptions { BatchSize = -1 }, "batch size -1");
            Assert.Throws<ArgumentOutOfRangeException>(() => new BankOptions { MaxIterations = -2 }, "max iterations -2");
            // C's rule: a negative sigma is the model's default (as null); NaN is refused.
            var negative = new BankOptions { Sigma = -5f, MaxIterations = 5 };
            Assert.True(negative.Sigma == null, "a negative sigma reads back as the default (null)");
            using (MemoryBank bank = M.BuildBank(F.GoodImages().Take(2), negative))
                Assert.Equal(B.Info.Sigma, bank.Info.Sigma, "negative sigma = the model's");
            Assert.Status(Status.InvalidArgument, () => M.BuildBank(F.GoodImages().Take(2), new BankOptions { Sigma = float.NaN }), "NaN sigma");
        }

        private static void Test_ModelOptionsReachTheLibrary()
        {
            var defaults = new ModelOptions();
            Assert.Equal("cpu", defaults.ExecutionProvider, "default provider");
            using (Model small = Model.Open(F.ModelDir, new ModelOptions { MaxImageSide = 64, IntraThreads = 1 }))
            using (MemoryBank bank = small.LoadBank(F.BankPath))
            {
                Assert.Equal(M.Fingerprint, small.Fingerprint, "options do not change the fingerprint");
                Assert.Status(Status.LimitExceeded, () => small.Score(bank, F.Image), "96 px wide image, 64 px limit");
                using (ScoreResult r = small.Score(bank, F.Crop(0, 0, 64, 64), 64, 64, PixelFormat.Rgb8))
                    Assert.Equal(64 * 64, r.Map.Length, "64x64 within the limit");
            }
            Assert.Status(Status.Unsupported, () => Model.Open(F.ModelDir, new ModelOptions { ExecutionProvider = "cuda:0" }).Dispose(), "CUDA on a CPU build");
            // Optimisation level as in C: 0 = off, negative (-1) = the default (3).
            Assert.Equal(3, defaults.OptimizationLevel, "default level read from the library");
            Assert.Equal(ModelOptions.OptimizationDefault, new ModelOptions { OptimizationLevel = -7 }.OptimizationLevel, "negative = default");
            foreach (int level in new[] { ModelOptions.OptimizationOff, ModelOptions.OptimizationDefault })
                using (Model m = Model.Open(F.ModelDir, new ModelOptions { OptimizationLevel = level, IntraThreads = 1 }))
                    Assert.Equal(M.Fingerprint, m.Fingerprint, "opens with optimisation level " + level);
            Assert.Status(Status.InvalidArgument, () => Model.Open(F.ModelDir, new ModelOptions { OptimizationLevel = 7 }).Dispose(), "level 7");
        }

        private static void Test_LoadErrors()
        {
            Assert.Status(Status.Io, () => M.LoadBank(Path.Combine(Temp, "missing.bank")), "missing bank");
            string junk = Path.Combine(Temp, "junk.bank");
            File.WriteAllBytes(junk, Encoding.ASCII.GetBytes("this is not a safetensors bank"));
            Assert.Status(Status.Format, () => M.LoadBank(junk), "junk bank");
            Assert.Status(Status.Io, () => Model.Open(Path.Combine(Temp, "no-model")), "missing model folder");
            Assert.Status(Status.Io, () => B.Save(Path.Combine(Temp, "no-such-dir", "x.bank")), "save into a missing folder");
            Assert.Throws<ArgumentNullException>(() => Model.Open(null), "null model path");
            Assert.Throws<ArgumentException>(() => M.LoadBank(""), "empty bank path");
            Assert.Throws<ArgumentException>(() => B.Save("a\0b"), "NUL in a path");
        }

        private static void Test_WrongModelBankIsMismatch()
        {
            string other = Path.Combine(Temp, "tiny-local1");
            Directory.CreateDirectory(other);
            foreach (string file in Directory.GetFiles(F.ModelDir))
                File.Copy(file, Path.Combine(other, Path.GetFileName(file)));
            string json = Path.Combine(other, "model.json");
            string text = File.ReadAllText(json);
            string changed = Regex.Replace(text, "\"local_avg\"\\s*:\\s*3", "\"local_avg\": 1");
            Assert.True(changed != text, "model.json has fusion.local_avg = 3");
            File.WriteAllText(json, changed);
            using (Model m2 = Model.Open(other))
            {
                Assert.True(m2.Fingerprint != M.Fingerprint, "a different fusion gives a different fingerprint");
                NexVitadException e = Assert.Status(Status.Mismatch, () => m2.LoadBank(F.BankPath), "fixture bank on the other model");
                Assert.True(e.Message.Length > 0, "mismatch has a message");
                Assert.Status(Status.Mismatch, () => m2.Score(B, F.Image), "scoring with another model's bank");
            }
        }

        // ---- tiled banks (C ABI revision 3) -----------------------------------------------------

        /// <summary>Checks a score of the fixture image against expected.json or expected_tiled.json.</summary>
        private static void AssertFixture(Dictionary<string, string> expected, ScoreResult r, string what)
        {
            Assert.Equal(expected["image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), what + ": image_score bits");
            Assert.Equal(expected["image_threshold_bits"], Fixture.Bits(r.ImageThreshold).ToString("x8"), what + ": image_threshold bits");
            Assert.Equal(bool.Parse(expected["is_anomalous"]), r.IsAnomalous, what + ": is_anomalous");
            Assert.Equal(F.Width, r.Width, what + ": map width");
            Assert.Equal(F.Height, r.Height, what + ": map height");
            Assert.Equal(int.Parse(expected["map_len"], CultureInfo.InvariantCulture), r.Map.Length, what + ": map length");
            Assert.Equal(expected["map_sha256"], Fixture.Sha256(r.Map), what + ": map SHA-256");
        }

        private static void Test_TiledFixtureBitExact()
        {
            Assert.True(Library.AbiRevision >= 3, "ABI revision 3: tiled banks");
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                BankInfo info = tiled.Info;
                Assert.True(info.IsTiled, "tiled.bank is tiled");
                Assert.Equal(48, info.Tile, "tile");
                Assert.Equal(48, info.TileHeight, "tile height (a square encoder input)");
                Assert.Equal(0.25f, info.TileOverlap, "tile overlap");
                Assert.Equal(TileLayout.Shared, info.TileLayout, "layout");
                Assert.Equal(0, info.TileColumns + info.TileRows + info.ImageWidth + info.ImageHeight, "a shared bank has no fixed size");
                Assert.Equal(8, info.K, "K");
                Assert.Equal(3, info.Shots, "shots");
                using (ScoreResult r = M.Score(tiled, F.Image)) AssertFixture(F.ExpectedTiled, r, "tiled.bank");
                using (ScoreResult r = tiled.Score(F.Image)) AssertFixture(F.ExpectedTiled, r, "tiled.bank alone");
                string copy = Path.Combine(Temp, "tiled-copy.bank");
                tiled.Save(copy);
                using (MemoryBank again = M.LoadBank(copy))
                using (ScoreResult r = again.Score(F.Image))
                    AssertFixture(F.ExpectedTiled, r, "tiled.bank saved and loaded");
            }
            BankInfo whole = B.Info;
            Assert.True(!whole.IsTiled && whole.TileHeight == 0 && whole.TileOverlap == 0f && whole.TileLayout == TileLayout.Shared &&
                whole.TileColumns == 0 && whole.TileRows == 0 && whole.ImageWidth == 0 && whole.ImageHeight == 0,
                "tiny.bank (whole-image) reports no tiling");
            using (ScoreResult r = M.Score(B, F.Image)) AssertFixture(F.Expected, r, "tiny.bank");
        }

        private static void Test_TiledBanksBuildSaveLoad()
        {
            // Shared: any image size (the good images are 80x64 and 64x64 crops).
            var shared = new BankOptions { K = 8, MaxIterations = 5, Tile = 48, TileOverlap = 0.25f };
            string path = Path.Combine(Temp, "shared-tiles.bank");
            Outcome built;
            using (MemoryBank bank = M.BuildBank(F.GoodImages(), shared))
            {
                BankInfo info = bank.Info;
                Assert.True(info.IsTiled && info.Tile == 48 && info.TileHeight == 48 && info.TileOverlap == 0.25f &&
                    info.TileLayout == TileLayout.Shared, "shared tile bank info");
                Assert.Equal(0, info.TileColumns + info.ImageWidth, "no fixed size");
                Assert.Equal(4, info.Shots, "shots");
                using (ScoreResult r = M.Score(bank, F.Image)) built = Outcome.Of(r);
                bank.Save(path);
            }
            using (MemoryBank loaded = M.LoadBank(path))
            {
                Assert.Equal(48, loaded.Info.Tile, "loaded tile");
                using (ScoreResult r = loaded.Score(F.Image)) Assert.Equal(built, Outcome.Of(r), "loaded shared tile bank scores as built");
                NexVitadException small = Assert.Status(Status.InvalidArgument,
                    () => loaded.Score(new ImageBuffer(F.Crop(0, 0, 40, 40), 40, 40, PixelFormat.Rgb8)), "image smaller than a tile");
                Assert.True(small.Message.Contains("tile 48x48 is larger than the 40x40 image"), "message: " + small.Message);
            }

            // Per-position: images of one size (the three 80x64 crops), and only that size scores.
            var perPosition = new BankOptions { K = 8, MaxIterations = 5, Tile = 48, TileLayout = TileLayout.PerPosition };
            path = Path.Combine(Temp, "per-position-tiles.bank");
            using (MemoryBank bank = M.BuildBank(F.GoodImages().Take(3), perPosition))
            {
                BankInfo info = bank.Info;
                Assert.Equal(TileLayout.PerPosition, info.TileLayout, "layout");
                Assert.Equal(2, info.TileColumns, "columns (80 px in 48 px tiles)");
                Assert.Equal(2, info.TileRows, "rows (64 px in 48 px tiles)");
                Assert.Equal(80, info.ImageWidth, "image width");
                Assert.Equal(64, info.ImageHeight, "image height");
                Assert.Equal(4L * 8, info.Vectors, "one bank of K = 8 per position");
                using (ScoreResult r = bank.Score(new ImageBuffer(F.Crop(8, 4, 80, 64), 80, 64, PixelFormat.Rgb8))) built = Outcome.Of(r);
                NexVitadException e = Assert.Status(Status.InvalidArgument, () => M.Score(bank, F.Image), "per-position bank, another size");
                Assert.True(e.Message.Contains("one bank per tile position of 80x64 images"), "message: " + e.Message);
                Assert.Status(Status.InvalidArgument, () => M.ScoreBatch(bank, new[] { new ImageBuffer(F.Crop(0, 0, 80, 64), 80, 64, PixelFormat.Rgb8), F.Image }),
                    "per-position bank, another size in a batch");
                bank.Save(path);
            }
            using (MemoryBank loaded = M.LoadBank(path))
            {
                Assert.Equal(80, loaded.Info.ImageWidth, "loaded image width");
                using (ScoreResult r = loaded.Score(new ImageBuffer(F.Crop(8, 4, 80, 64), 80, 64, PixelFormat.Rgb8)))
                    Assert.Equal(built, Outcome.Of(r), "loaded per-position bank scores as built");
            }
        }

        private static void Test_TileOptionsFollowCRules()
        {
            var d = new BankOptions();
            Assert.True(d.Tile == 0 && d.TileOverlap == 0f && d.TileLayout == TileLayout.Shared, "tiling off by default");
            foreach (float bad in new[] { 1f, 1.5f, -0.01f, float.NaN, float.PositiveInfinity })
                Assert.Throws<ArgumentOutOfRangeException>(() => new BankOptions { TileOverlap = bad }, "TileOverlap " + bad);
            Assert.Throws<ArgumentOutOfRangeException>(() => new BankOptions { Tile = -1 }, "negative Tile");
            Assert.Throws<ArgumentOutOfRangeException>(() => new BankOptions { TileLayout = (TileLayout)7 }, "TileLayout 7");
            var edge = new BankOptions { TileOverlap = 0.999f, Tile = 0 };
            Assert.Equal(0.999f, edge.TileOverlap, "overlap just below 1 is accepted");

            // What only the library can tell: the images' sizes.
            var images = F.GoodImages();
            NexVitadException e = Assert.Status(Status.InvalidArgument, () => M.BuildBank(images, new BankOptions { Tile = 224 }), "tile larger than the images");
            Assert.True(e.Message.Contains("tile 224x224 is larger than the 80x64 image"), "message: " + e.Message);
            e = Assert.Status(Status.InvalidArgument, () => M.BuildBank(images, new BankOptions { Tile = 48, TileLayout = TileLayout.PerPosition }),
                "per-position from mixed sizes");
            Assert.True(e.Message.Contains("needs images of one size"), "message: " + e.Message);
            e = Assert.Status(Status.LimitExceeded, () => M.BuildBank(images, new BankOptions { Tile = 2, TileOverlap = 0.9f }), "too many tiles");
            Assert.True(e.Message.Contains("MAX_TILES"), "message: " + e.Message);
        }

        // ---- tiles per encoder call (C ABI revision 6) ------------------------------------------

        private static void Test_TileBatchDefaultsAndChecks()
        {
            Assert.True(Library.AbiRevision >= 6, "ABI revision 6: nexvitad_options.tile_batch");
            Assert.Equal(0, new ModelOptions().TileBatch, "TileBatch 0 (the provider's default) read from the library");
            Assert.Equal(256, new ModelOptions { TileBatch = 256 }.TileBatch, "TileBatch set");
            Assert.Throws<ArgumentOutOfRangeException>(() => new ModelOptions { TileBatch = -1 }, "negative TileBatch");
            NexVitadException e = Assert.Status(Status.InvalidArgument,
                () => Model.Open(F.ModelDir, new ModelOptions { TileBatch = 257 }).Dispose(), "TileBatch 257");
            Assert.True(e.Message.Contains("tile_batch 257"), "message: " + e.Message);
        }

        private static void Test_TileBatchOneAndMaxScoreAsTheDefault()
        {
            Assert.True(Library.AbiRevision >= 6, "ABI revision 6: nexvitad_options.tile_batch");
            var images = new List<ImageBuffer> { F.Image };
            images.AddRange(F.GoodImages());
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                float want;
                uint wantThreshold;
                using (ScoreResult r = M.Score(tiled, F.Image))
                {
                    want = r.ImageScore;
                    wantThreshold = Fixture.Bits(r.ImageThreshold);
                }
                float[] wantBatch = M.ScoreBatch(tiled, images, withMaps: false).Select(r => { using (r) return r.ImageScore; }).ToArray();
                foreach (int n in new[] { 1, 256 })
                    using (Model m = Model.Open(F.ModelDir, new ModelOptions { TileBatch = n }))
                    {
                        string what = "TileBatch " + n;
                        Assert.Equal(M.Fingerprint, m.Fingerprint, what + ": same fingerprint");
                        using (ScoreResult r = m.Score(tiled, F.Image))
                        {
                            Assert.True(Math.Abs(r.ImageScore - want) <= 1e-4 * Math.Abs(want),
                                what + ": image score " + r.ImageScore + " vs the default's " + want);
                            Assert.Equal(wantThreshold, Fixture.Bits(r.ImageThreshold), what + ": threshold");
                            Assert.Equal(F.Width * F.Height, r.Map.Length, what + ": map length");
                        }
                        // A batch: the tiles of the next images fill each encoder call.
                        ScoreResult[] batch = m.ScoreBatch(tiled, images, withMaps: false);
                        Assert.Equal(images.Count, batch.Length, what + ": batch length");
                        for (int i = 0; i < batch.Length; i++)
                            using (batch[i])
                                Assert.True(Math.Abs(batch[i].ImageScore - wantBatch[i]) <= 1e-4 * Math.Abs(wantBatch[i]),
                                    what + ": batch image " + i + " score " + batch[i].ImageScore + " vs the default's " + wantBatch[i]);
                    }
            }
        }

        // ---- the encoders side by side (C ABI revision 6) ---------------------------------------

        private static void Test_ParallelEncodersDefaultsToOffAndReachesTheCStruct()
        {
            Assert.True(Library.AbiRevision >= 6, "ABI revision 6: nexvitad_options.parallel_encoders");
            Assert.True(!new ModelOptions().ParallelEncoders, "ParallelEncoders false (off) read from the library");
            var on = new ModelOptions { ParallelEncoders = true };
            Assert.True(on.ParallelEncoders, "ParallelEncoders set");
            // The C struct the binding passes (ToNative is internal; its strings are freed by Free).
            MethodInfo toNative = typeof(ModelOptions).GetMethod("ToNative", BindingFlags.NonPublic | BindingFlags.Instance);
            MethodInfo free = typeof(ModelOptions).GetMethod("Free", BindingFlags.NonPublic | BindingFlags.Static);
            foreach (bool value in new[] { false, true })
            {
                object boxed = toNative.Invoke(new ModelOptions { ParallelEncoders = value }, null);
                var o = (nexvitad_options)boxed;
                free.Invoke(null, new[] { boxed });
                Assert.Equal(value ? 1u : 0u, o.parallel_encoders, "ParallelEncoders " + value + " -> nexvitad_options.parallel_encoders");
            }
        }

        private static void Test_ParallelEncodersScoreAsTheDefault()
        {
            Assert.True(Library.AbiRevision >= 6, "ABI revision 6: nexvitad_options.parallel_encoders");
            float want;
            uint wantThreshold;
            using (ScoreResult r = M.Score(B, F.Image)) // crosslang tiny.bank, encoders one after the other
            {
                want = r.ImageScore;
                wantThreshold = Fixture.Bits(r.ImageThreshold);
            }
            using (Model m = Model.Open(F.ModelDir, new ModelOptions { ParallelEncoders = true }))
            using (MemoryBank bank = m.LoadBank(F.BankPath))
            {
                Assert.Equal(M.Fingerprint, m.Fingerprint, "ParallelEncoders: same fingerprint");
                using (ScoreResult r = m.Score(bank, F.Image))
                {
                    Assert.True(Math.Abs(r.ImageScore - want) <= 1e-5 * Math.Abs(want),
                        "ParallelEncoders: image score " + r.ImageScore + " vs the default's " + want);
                    Assert.Equal(wantThreshold, Fixture.Bits(r.ImageThreshold), "ParallelEncoders: threshold");
                    Assert.Equal(F.Width * F.Height, r.Map.Length, "ParallelEncoders: map length");
                }
            }
        }

        // ---- defect regions and per-call thresholds (C ABI revision 3) -------------------------

        /// <summary>The options that reproduce expected_tiled.json's region list.</summary>
        private static ScoreOptions FixtureRegionOptions()
        {
            uint bits = uint.Parse(F.ExpectedTiled["regions_pixel_threshold_bits"], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return new ScoreOptions { PixelThreshold = BitConverter.ToSingle(BitConverter.GetBytes(bits), 0), MinRegionArea = 0 };
        }

        private static void AssertFixtureRegions(IReadOnlyList<Region> got, string what)
        {
            Assert.Equal(F.ExpectedRegions.Count, got.Count, what + ": region count");
            for (int i = 0; i < got.Count; i++)
            {
                Dictionary<string, string> w = F.ExpectedRegions[i];
                Region r = got[i];
                string at = what + ": region " + i + " (" + r + ")";
                Assert.Equal(int.Parse(w["x"], CultureInfo.InvariantCulture), r.X, at + " x");
                Assert.Equal(int.Parse(w["y"], CultureInfo.InvariantCulture), r.Y, at + " y");
                Assert.Equal(int.Parse(w["width"], CultureInfo.InvariantCulture), r.Width, at + " width");
                Assert.Equal(int.Parse(w["height"], CultureInfo.InvariantCulture), r.Height, at + " height");
                Assert.Equal(long.Parse(w["area"], CultureInfo.InvariantCulture), r.Area, at + " area");
                Assert.Equal(w["peak_bits"], Fixture.Bits(r.Peak).ToString("x8"), at + " peak bits");
                Assert.Equal(w["mean_bits"], Fixture.Bits(r.Mean).ToString("x8"), at + " mean bits");
                Assert.Equal(w["centroid_x_bits"], Fixture.Bits(r.CentroidX).ToString("x8"), at + " centroid x bits");
                Assert.Equal(w["centroid_y_bits"], Fixture.Bits(r.CentroidY).ToString("x8"), at + " centroid y bits");
            }
        }

        private static void Test_ScoreOptionsDefaultsAndChecks()
        {
            var d = new ScoreOptions();
            Assert.True(d.ImageThreshold == null && d.PixelThreshold == null && d.MinRegionArea == 0 && d.FindRegions &&
                d.RegionCapacity == 64, "defaults: the bank's thresholds, every region, regions found");
            var o = new ScoreOptions { ImageThreshold = 0f, PixelThreshold = 2.5f, MinRegionArea = 7 };
            Assert.True(o.ImageThreshold == 0f && o.PixelThreshold == 2.5f && o.MinRegionArea == 7, "values kept (0 is a threshold)");
            o.ImageThreshold = null;
            Assert.True(o.ImageThreshold == null, "null = the bank's again");
            foreach (float bad in new[] { -1f, float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            {
                Assert.Throws<ArgumentOutOfRangeException>(() => new ScoreOptions { ImageThreshold = bad }, "ImageThreshold " + bad);
                Assert.Throws<ArgumentOutOfRangeException>(() => new ScoreOptions { PixelThreshold = bad }, "PixelThreshold " + bad);
            }
            Assert.Throws<ArgumentOutOfRangeException>(() => new ScoreOptions { MinRegionArea = -1 }, "negative MinRegionArea");
            Assert.Throws<ArgumentOutOfRangeException>(() => new ScoreOptions { RegionCapacity = -1 }, "negative RegionCapacity");
            Assert.Throws<ArgumentNullException>(() => M.Score(B, F.Image, (ScoreOptions)null), "null options");
            Assert.Throws<ArgumentNullException>(() => B.Score(F.Image, (ScoreOptions)null), "null options, bank alone");
        }

        private static void Test_DefaultScoreOptionsScoreAsPlainScore()
        {
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                foreach (MemoryBank bank in new[] { B, tiled })
                {
                    using (ScoreResult plain = M.Score(bank, F.Image))
                    using (ScoreResult with = M.Score(bank, F.Image, new ScoreOptions()))
                    {
                        Assert.Equal(Outcome.Of(plain), Outcome.Of(with), "default ScoreOptions: the same score and map");
                        Assert.Equal(Fixture.Bits(plain.PixelThreshold), Fixture.Bits(with.PixelThreshold), "the bank's pixel threshold");
                        Assert.Equal(ThresholdSource.Bank, with.ThresholdSource, "no caller thresholds");
                        Assert.Equal(ThresholdSource.Bank, plain.ThresholdSource, "plain Score: no caller thresholds");
                        Assert.Equal(0, plain.Regions.Count, "plain Score finds no regions");
                        foreach (Region r in with.Regions)
                            Assert.True(r.Peak > with.PixelThreshold, "a region above the bank's pixel threshold: " + r);
                    }
                }
            }
        }

        private static void Test_FixtureRegionsBitExact()
        {
            Assert.True(F.ExpectedRegions.Count >= 3, "expected_tiled.json lists regions: " + F.ExpectedRegions.Count);
            ScoreOptions o = FixtureRegionOptions();
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                using (ScoreResult r = M.Score(tiled, F.Image, o))
                {
                    AssertFixtureRegions(r.Regions, "Model.Score");
                    Assert.Equal(ThresholdSource.PixelFromCaller, r.ThresholdSource, "only the pixel threshold is the caller's");
                    Assert.Equal(F.ExpectedTiled["regions_pixel_threshold_bits"], Fixture.Bits(r.PixelThreshold).ToString("x8"), "pixel threshold used");
                    AssertFixture(F.ExpectedTiled, r, "the score and map with regions");
                }
                using (ScoreResult r = tiled.Score(F.Image, o, withMap: false))
                {
                    AssertFixtureRegions(r.Regions, "MemoryBank.Score, no map");
                    Assert.True(!r.HasMap, "no map");
                }
                // Room for fewer regions than there are: the binding scores again with room for all.
                foreach (int cap in new[] { 0, 1, F.ExpectedRegions.Count - 1 })
                {
                    ScoreOptions small = FixtureRegionOptions();
                    small.RegionCapacity = cap;
                    using (ScoreResult r = M.Score(tiled, F.Image, small, withMap: false))
                        AssertFixtureRegions(r.Regions, "first capacity " + cap);
                }
            }
        }

        private static void Test_RegionOptionsAndThresholdFlags()
        {
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                ScoreOptions o = FixtureRegionOptions();
                Region[] all;
                using (ScoreResult r = M.Score(tiled, F.Image, o, withMap: false)) all = r.Regions.ToArray();
                o.MinRegionArea = 20;
                using (ScoreResult r = M.Score(tiled, F.Image, o, withMap: false))
                {
                    Region[] want = all.Where(g => g.Area >= 20).ToArray();
                    Assert.True(want.Length < all.Length, "the fixture has regions below 20 pixels");
                    Assert.True(want.SequenceEqual(r.Regions), "MinRegionArea 20 keeps the larger regions in order");
                }
                o.FindRegions = false;
                using (ScoreResult r = M.Score(tiled, F.Image, o, withMap: false))
                    Assert.True(r.Regions.Count == 0 && r.ThresholdSource == ThresholdSource.PixelFromCaller, "FindRegions false: no regions");

                var zero = new ScoreOptions { ImageThreshold = 0f };
                using (ScoreResult r = tiled.Score(F.Image, zero, withMap: false))
                {
                    Assert.True(r.IsAnomalous && r.ImageThreshold == 0f, "image threshold 0 flags the image");
                    Assert.Equal(ThresholdSource.ImageFromCaller, r.ThresholdSource, "the image threshold is the caller's");
                    Assert.Equal(Fixture.Bits(tiled.Info.PixelThreshold), Fixture.Bits(r.PixelThreshold), "the bank's pixel threshold");
                }
                var both = new ScoreOptions { ImageThreshold = 100f, PixelThreshold = 0f };
                using (ScoreResult r = M.Score(tiled, F.Image, both, withMap: false))
                {
                    Assert.Equal(ThresholdSource.ImageFromCaller | ThresholdSource.PixelFromCaller, r.ThresholdSource, "both flags");
                    Assert.True(!r.IsAnomalous, "image threshold 100: normal");
                    Assert.True(r.Regions.Count >= 1 && r.Regions.Sum(g => g.Area) <= F.Width * F.Height, "pixel threshold 0: regions cover the map");
                }
            }
        }

        private static void Test_ScoreBatchWithOptions()
        {
            Assert.True(Library.AbiRevision >= 5, "ABI revision 5: nexvitad_score_batch_with_options");
            var images = new[] { F.Image, new ImageBuffer(F.Mirrored(), F.Width, F.Height, PixelFormat.Rgb8) };
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                ScoreOptions o = FixtureRegionOptions();
                o.ImageThreshold = 0f;
                ScoreResult[] batch = M.ScoreBatch(tiled, images, o);
                ScoreResult[] noMaps = M.ScoreBatch(tiled, images, o, withMaps: false);
                Assert.Equal(images.Length, batch.Length, "one result per image");
                for (int i = 0; i < images.Length; i++)
                {
                    string at = "image " + i;
                    ScoreResult r = batch[i];
                    Assert.True(r.IsAnomalous && r.ImageThreshold == 0f, at + ": image threshold 0 flags the image");
                    Assert.Equal(ThresholdSource.ImageFromCaller | ThresholdSource.PixelFromCaller, r.ThresholdSource,
                        at + ": both thresholds are the caller's");
                    Assert.Equal(0, r.Regions.Count, at + ": regions are counted, not returned");
                    using (ScoreResult one = M.Score(tiled, images[i], o))
                    {
                        Assert.Equal((long)one.Regions.Count, r.RegionCount, at + ": region count as the single-image call's");
                        Assert.Equal(one.RegionCount, r.RegionCount, at + ": RegionCount as the single-image call's");
                        Assert.Equal(Outcome.Of(one), Outcome.Of(r), at + ": score bits and map as the single-image call's");
                    }
                    Assert.True(!noMaps[i].HasMap, at + ": withMaps false");
                    Assert.Equal(r.RegionCount, noMaps[i].RegionCount, at + ": the same count without maps");
                }
                Assert.Equal((long)F.ExpectedRegions.Count, batch[0].RegionCount, "expected_tiled.json's region count");
                foreach (ScoreResult r in batch) r.Dispose();

                // MinRegionArea counts only the larger regions.
                ScoreOptions big = FixtureRegionOptions();
                big.MinRegionArea = 20;
                ScoreResult[] counted = M.ScoreBatch(tiled, images, big, withMaps: false);
                for (int i = 0; i < images.Length; i++)
                    using (ScoreResult one = M.Score(tiled, images[i], big, withMap: false))
                        Assert.Equal((long)one.Regions.Count, counted[i].RegionCount, "MinRegionArea 20, image " + i);
                Assert.True(counted[0].RegionCount < F.ExpectedRegions.Count, "the fixture has regions below 20 pixels");

                // Default options: the plain batch's decisions at the bank's thresholds.
                ScoreResult[] plain = M.ScoreBatch(tiled, images, withMaps: false);
                ScoreResult[] defaults = M.ScoreBatch(tiled, images, new ScoreOptions(), withMaps: false);
                for (int i = 0; i < images.Length; i++)
                {
                    Assert.Equal(Outcome.Of(plain[i]), Outcome.Of(defaults[i]), "default options, image " + i);
                    Assert.Equal(ThresholdSource.Bank, defaults[i].ThresholdSource, "default options: the bank's thresholds");
                    Assert.Equal(0L, plain[i].RegionCount, "the plain batch counts no regions");
                }

                Assert.Equal(0, M.ScoreBatch(tiled, new ImageBuffer[0], o).Length, "empty batch");
                Assert.Throws<ArgumentNullException>(() => M.ScoreBatch(tiled, images, (ScoreOptions)null), "null options");
                Assert.Throws<ArgumentNullException>(() => M.ScoreBatch(tiled, null, o), "null image list");
                Assert.Throws<ArgumentException>(() => M.ScoreBatch(tiled, new[] { F.Image, null }, o), "null image");
            }
        }

        private static void Test_ScoreBatchWithOptionsRefusesANaNThreshold()
        {
            var images = new[] { F.Image, F.Image };
            // The binding refuses NaN when it is set ...
            Assert.Throws<ArgumentOutOfRangeException>(() => new ScoreOptions { ImageThreshold = float.NaN }, "NaN ImageThreshold");
            // ... and the library when it reaches it anyway (set in the C struct behind the property's back).
            foreach (string field in new[] { "image_threshold", "pixel_threshold" })
            {
                ScoreOptions o = WithRawThreshold(field, float.NaN);
                NexVitadException e = Assert.Status(Status.InvalidArgument, () => M.ScoreBatch(B, images, o), "NaN " + field);
                Assert.True(e.Message.Contains("nexvitad_score_batch_with_options") && e.Message.Contains(field + " NaN must be finite and >= 0"),
                    "the message names the call and the threshold: " + e.Message);
                Assert.Status(Status.InvalidArgument, () => M.ScoreBatch(B, images, o, withMaps: false), "NaN " + field + ", no maps");
            }
            using (ScoreResult r = M.Score(B, F.Image))
                Assert.Equal(F.Expected["image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "still scores");
        }

        /// <summary>ScoreOptions whose C struct holds <paramref name="value"/> in <paramref name="field"/>, which the
        /// properties refuse to set.</summary>
        private static ScoreOptions WithRawThreshold(string field, float value)
        {
            var o = new ScoreOptions();
            FieldInfo raw = typeof(ScoreOptions).GetField("_o", BindingFlags.NonPublic | BindingFlags.Instance);
            Assert.True(raw != null, "ScoreOptions keeps its C struct in _o");
            object boxed = raw.GetValue(o);
            typeof(nexvitad_score_options).GetField(field).SetValue(boxed, value);
            raw.SetValue(o, boxed);
            return o;
        }

        // ---- regions of interest and recalibration (C ABI revision 4) ---------------------------

        /// <summary>Checks a score of the fixture image against expected_roi.json's plain fields (roi.bank, its own ROI).</summary>
        private static void AssertRoiPlain(ScoreResult r, string what)
        {
            Assert.Equal(RoiSource.FromBank, r.RoiSource, what + ": roi source");
            AssertFixture(F.ExpectedRoi, r, what);
        }

        private static Mask FixtureMask()
        {
            return new Mask(F.RoiMask, F.RoiWidth, F.RoiHeight);
        }

        private static void Test_RoiFixtureBitExact()
        {
            Assert.True(Library.AbiRevision >= 4, "ABI revision 4: regions of interest");
            Assert.Equal(F.RoiWidth * F.RoiHeight, F.RoiMask.Length, "roi.mask is roi_width x roi_height bytes");
            using (MemoryBank roi = M.LoadBank(F.RoiBankPath))
            {
                BankInfo info = roi.Info;
                Assert.True(info.HasRoi, "roi.bank has a ROI");
                Assert.Equal(F.RoiWidth, info.RoiWidth, "roi width");
                Assert.Equal(F.RoiHeight, info.RoiHeight, "roi height");
                byte[] mask = roi.GetRoi();
                Assert.True(mask != null && mask.SequenceEqual(F.RoiMask), "GetRoi() = roi.mask");

                // Default options: the bank's own ROI.
                using (ScoreResult r = M.Score(roi, F.Image)) AssertRoiPlain(r, "Model.Score");
                using (ScoreResult r = roi.Score(F.Image)) AssertRoiPlain(r, "MemoryBank.Score");
                using (ScoreResult r = M.Score(roi, F.Image, new ScoreOptions())) AssertRoiPlain(r, "Model.Score, default ScoreOptions");
                using (ScoreResult r = roi.Score(F.Image, new ScoreOptions { FindRegions = false })) AssertRoiPlain(r, "MemoryBank.Score, no regions");
                ScoreResult[] batch = M.ScoreBatch(roi, new[] { F.Image, F.Image });
                AssertRoiPlain(batch[1], "Model.ScoreBatch");
                foreach (ScoreResult b in batch) b.Dispose();

                // roi.bank with its ROI switched off.
                using (ScoreResult r = M.Score(roi, F.Image, new ScoreOptions { IgnoreBankRoi = true }))
                {
                    Assert.Equal(RoiSource.None, r.RoiSource, "IgnoreBankRoi: roi source");
                    Assert.Equal(F.ExpectedRoi["ignore_roi_image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "IgnoreBankRoi: image score bits");
                    Assert.Equal(F.ExpectedRoi["ignore_roi_map_sha256"], Fixture.Sha256(r.Map), "IgnoreBankRoi: map SHA-256");
                }

                // Saved and loaded back: the ROI and the bits stay.
                string copy = Path.Combine(Temp, "roi-copy.bank");
                roi.Save(copy);
                using (MemoryBank again = M.LoadBank(copy))
                {
                    Assert.True(again.GetRoi().SequenceEqual(F.RoiMask), "the ROI is saved with the bank");
                    using (ScoreResult r = again.Score(F.Image)) AssertRoiPlain(r, "roi.bank saved and loaded");
                }
            }

            // tiny.bank (no ROI) with roi.mask given per call; also as a padded slice of a larger array.
            Assert.True(!B.Info.HasRoi && B.Info.RoiWidth == 0 && B.GetRoi() == null, "tiny.bank has no ROI");
            int stride = F.RoiWidth + 3;
            byte[] padded = new byte[5 + stride * F.RoiHeight];
            for (int y = 0; y < F.RoiHeight; y++)
                Buffer.BlockCopy(F.RoiMask, y * F.RoiWidth, padded, 5 + y * stride, F.RoiWidth);
            var masks = new[]
            {
                FixtureMask(),
                new Mask(new ReadOnlyMemory<byte>(padded, 5, padded.Length - 5), F.RoiWidth, F.RoiHeight, stride),
            };
            foreach (Mask mask in masks)
            {
                var o = new ScoreOptions { Roi = mask };
                using (ScoreResult r = M.Score(B, F.Image, o))
                {
                    Assert.Equal(RoiSource.FromCaller, r.RoiSource, "caller ROI: roi source (" + mask + ", stride " + mask.Stride + ")");
                    Assert.Equal(F.ExpectedRoi["caller_roi_image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "caller ROI: image score bits");
                    Assert.Equal(F.ExpectedRoi["caller_roi_map_sha256"], Fixture.Sha256(r.Map), "caller ROI: map SHA-256");
                }
                using (ScoreResult r = B.Score(F.Image, o, withMap: false))
                    Assert.Equal(F.ExpectedRoi["caller_roi_image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "caller ROI, bank alone");
            }
            using (ScoreResult r = M.Score(B, F.Image)) Assert.Equal(RoiSource.None, r.RoiSource, "tiny.bank: no ROI");
            // The caller's ROI for every image of a batch (nexvitad_score_batch_with_options, revision 5).
            foreach (Mask mask in masks)
            {
                ScoreResult[] batch = M.ScoreBatch(B, new[] { F.Image, F.Image }, new ScoreOptions { Roi = mask });
                foreach (ScoreResult r in batch)
                {
                    Assert.Equal(RoiSource.FromCaller, r.RoiSource, "batch, caller ROI: roi source (stride " + mask.Stride + ")");
                    Assert.Equal(F.ExpectedRoi["caller_roi_image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "batch, caller ROI: image score bits");
                    Assert.Equal(F.ExpectedRoi["caller_roi_map_sha256"], Fixture.Sha256(r.Map), "batch, caller ROI: map SHA-256");
                    r.Dispose();
                }
            }
        }

        private static void Test_BuildBankWithRoi()
        {
            // 4 x 3, the right column ignored, given as 255s (and one 7): the bank stores 1s.
            byte[] bytes = { 255, 255, 255, 0, 255, 255, 255, 0, 7, 255, 255, 0 };
            var options = new BankOptions { K = 8, MaxIterations = 5, Roi = new Mask(bytes, 4, 3) };
            Assert.True(options.Roi.HasValue && options.Roi.Value.Width == 4, "BankOptions.Roi kept");
            string path = Path.Combine(Temp, "roi-built.bank");
            using (MemoryBank bank = M.BuildBank(F.GoodImages(), options))
            {
                BankInfo info = bank.Info;
                Assert.True(info.HasRoi && info.RoiWidth == 4 && info.RoiHeight == 3, "info: a 4x3 ROI");
                Assert.True(bank.GetRoi().SequenceEqual(new byte[] { 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0 }), "GetRoi(): 1 = inspect");
                using (ScoreResult r = M.Score(bank, F.Image))
                {
                    Assert.Equal(RoiSource.FromBank, r.RoiSource, "scored with the bank's ROI");
                    Assert.Equal(0f, r[F.Width - 1, 0], "a map pixel outside the ROI is 0");
                    Assert.Equal(0f, r[F.Width - 1, F.Height - 1], "another map pixel outside is 0");
                    Assert.True(r[0, 0] > 0f, "a map pixel inside is scored");
                }
                using (ScoreResult r = bank.Score(F.Image, new ScoreOptions()))
                    Assert.Equal(RoiSource.FromBank, r.RoiSource, "bank alone, default options: the bank's ROI");
                bank.Save(path);
            }
            using (MemoryBank loaded = M.LoadBank(path))
                Assert.Equal(4, loaded.Info.RoiWidth, "the ROI is saved with the bank");
            using (MemoryBank plain = M.BuildBank(F.GoodImages().Take(2), new BankOptions { MaxIterations = 5 }))
                Assert.True(!plain.Info.HasRoi && plain.GetRoi() == null, "a bank without a ROI");
        }

        private static void Test_BadMasks()
        {
            // What the binding sees before native code.
            Assert.Throws<ArgumentOutOfRangeException>(() => new Mask(new byte[4], 0, 2), "width 0");
            Assert.Throws<ArgumentOutOfRangeException>(() => new Mask(new byte[4], 2, -1), "negative height");
            Assert.Throws<ArgumentOutOfRangeException>(() => new Mask(new byte[4], 2, 2, -2), "negative stride");
            ArgumentException a = Assert.Throws<ArgumentException>(() => new Mask(new byte[4], 2, 2, 1), "stride below the width");
            Assert.Equal("stride", a.ParamName, "the stride is named");
            Assert.Throws<ArgumentException>(() => new Mask(new byte[5], 2, 2, 4), "too few bytes for the stride");
            Assert.Throws<ArgumentException>(() => new Mask(new byte[3], 2, 2), "too few bytes");
            Assert.Throws<ArgumentNullException>(() => new Mask((byte[])null, 2, 2), "null array");
            Assert.Throws<ArgumentException>(() => M.Score(B, F.Image, new ScoreOptions { Roi = default(Mask) }), "default(Mask)");

            // What only the library can tell: a mask that selects nothing.
            var zeros = new Mask(new byte[24 * 18], 24, 18);
            NexVitadException e = Assert.Status(Status.InvalidArgument,
                () => M.BuildBank(F.GoodImages(), new BankOptions { MaxIterations = 5, Roi = zeros }), "all-zero mask, build");
            Assert.True(e.Message.Contains("options->roi") && e.Message.Contains("all zero"), "message names the mask: " + e.Message);
            e = Assert.Status(Status.InvalidArgument, () => M.Score(B, F.Image, new ScoreOptions { Roi = zeros }), "all-zero mask, score");
            Assert.True(e.Message.Contains("options->roi") && e.Message.Contains("all zero"), "message names the mask: " + e.Message);
            using (MemoryBank roi = M.LoadBank(F.RoiBankPath))
            {
                e = Assert.Status(Status.InvalidArgument, () => roi.Score(F.Image, new ScoreOptions { Roi = zeros }, withMap: false),
                    "all-zero mask, bank alone");
                Assert.True(e.Message.Contains("options->roi"), "message names the mask: " + e.Message);
                // Nothing was spoiled.
                using (ScoreResult r = roi.Score(F.Image)) AssertRoiPlain(r, "roi.bank after the errors");
            }
            var o = new ScoreOptions { IgnoreBankRoi = true, Roi = FixtureMask() };
            Assert.True(o.IgnoreBankRoi && o.Roi.HasValue, "ScoreOptions keeps both");
            o.IgnoreBankRoi = false;
            o.Roi = null;
            Assert.True(!o.IgnoreBankRoi && o.Roi == null, "back to the defaults");
        }

        private static void Test_RecalibratedIsANewBank()
        {
            using (MemoryBank roi = M.LoadBank(F.RoiBankPath))
            using (MemoryBank built = M.BuildBank(F.GoodImages(), new BankOptions { K = 8, MaxIterations = 5 }))
            {
                foreach (MemoryBank bank in new[] { built, roi })
                {
                    BankInfo before = bank.Info;
                    ScoreResult r0 = M.Score(bank, F.Image);
                    using (MemoryBank strict = bank.Recalibrated(0.001f))
                    {
                        Assert.True(!ReferenceEquals(strict, bank) && !strict.IsDisposed, "a new bank");
                        BankInfo si = strict.Info;
                        Assert.Equal(0.001f, si.TargetFpr, "the new target FPR");
                        Assert.True(si.ImageThreshold >= before.ImageThreshold,
                            "a stricter FPR, a higher image threshold: " + si.ImageThreshold + " vs " + before.ImageThreshold);
                        Assert.True(si.PixelThreshold >= before.PixelThreshold, "and pixel threshold");
                        Assert.Equal(before.Vectors, si.Vectors, "the same vectors");
                        Assert.Equal(before.RoiWidth, si.RoiWidth, "the same ROI");
                        using (ScoreResult r1 = strict.Score(F.Image))
                        {
                            Assert.Equal(Fixture.Bits(si.ImageThreshold), Fixture.Bits(r1.ImageThreshold), "decided at the new threshold");
                            Assert.Equal(Fixture.Bits(r0.ImageScore), Fixture.Bits(r1.ImageScore), "the same score");
                            Assert.Equal(Fixture.Sha256(r0.Map), Fixture.Sha256(r1.Map), "the same map");
                            Assert.Equal(r0.RoiSource, r1.RoiSource, "the same ROI source");
                        }
                        using (MemoryBank back = strict.Recalibrated(before.TargetFpr))
                            Assert.Equal(Fixture.Bits(before.ImageThreshold), Fixture.Bits(back.Info.ImageThreshold), "back at the bank's own FPR");
                    }
                    r0.Dispose();
                    // The original is unchanged: its info and its decisions.
                    Assert.Equal(Fixture.Bits(before.ImageThreshold), Fixture.Bits(bank.Info.ImageThreshold), "the original's threshold");
                    using (ScoreResult r = M.Score(bank, F.Image))
                        Assert.Equal(Fixture.Bits(before.ImageThreshold), Fixture.Bits(r.ImageThreshold), "the original decides as before");
                }
                using (ScoreResult r = roi.Score(F.Image)) AssertRoiPlain(r, "roi.bank after recalibrating copies");

                foreach (float bad in new[] { float.NaN, 0f, 1f, -0.5f, 2f })
                {
                    NexVitadException e = Assert.Status(Status.InvalidArgument, () => built.Recalibrated(bad).Dispose(), "target FPR " + bad);
                    Assert.True(e.Message.Contains("target_fpr"), "message names target_fpr: " + e.Message);
                }
            }
            // tiny.bank was saved before banks stored their pixel-score tail.
            NexVitadException old = Assert.Status(Status.InvalidArgument, () => B.Recalibrated(0.001f).Dispose(), "tiny.bank");
            Assert.True(old.Message.Contains("pixel-score tail"), "message: " + old.Message);
            MemoryBank disposed = M.LoadBank(F.RoiBankPath);
            disposed.Dispose();
            Assert.Throws<ObjectDisposedException>(() => disposed.Recalibrated(0.01f), "Recalibrated on a disposed bank");
            Assert.Throws<ObjectDisposedException>(() => disposed.GetRoi(), "GetRoi on a disposed bank");
        }

        // ---- banks that grow (revision 5) ------------------------------------------------------

        private static BankOptions GrowOptions() => new BankOptions { K = 8, MaxIterations = 5, Growable = true };

        /// <summary>GrowOptions with shared 48 px tiles overlapping by a quarter.</summary>
        private static BankOptions TiledGrowOptions() =>
            new BankOptions { K = 8, MaxIterations = 5, Growable = true, Tile = 48, TileOverlap = 0.25f };

        /// <summary>The same thresholds, sizes and settings, and the same score bits and map on the fixture image.</summary>
        private static void AssertSameBank(MemoryBank want, MemoryBank got, string what)
        {
            BankInfo w = want.Info, g = got.Info;
            Assert.Equal(w.Shots, g.Shots, what + ": shots");
            Assert.Equal(w.Vectors, g.Vectors, what + ": vectors");
            Assert.Equal(w.K, g.K, what + ": k");
            Assert.Equal(w.Growable, g.Growable, what + ": growable");
            Assert.Equal(w.Iterations, g.Iterations, what + ": iterations");
            Assert.Equal(Fixture.Bits(w.ImageThreshold), Fixture.Bits(g.ImageThreshold), what + ": image threshold bits");
            Assert.Equal(Fixture.Bits(w.PixelThreshold), Fixture.Bits(g.PixelThreshold), what + ": pixel threshold bits");
            Assert.Equal(Fixture.Bits(w.TargetFpr), Fixture.Bits(g.TargetFpr), what + ": target FPR");
            using (ScoreResult a = M.Score(want, F.Image))
            using (ScoreResult b = got.Score(F.Image))
                Assert.Equal(Outcome.Of(a), Outcome.Of(b), what + ": score bits and map");
        }

        private static void Test_GrowFixtureBitExact()
        {
            Assert.True(Library.AbiRevision >= 5, "ABI revision 5: banks that grow");
            Assert.Equal(F.GrowAddWidth * F.GrowAddHeight * 3, F.GrowAddRgb.Length, "grow_add.rgb is grow_add_width x grow_add_height RGB8");
            Assert.True(!new BankOptions().Growable, "not growable by default");
            Assert.True(!B.Info.Growable, "tiny.bank is not growable");
            using (MemoryBank two = M.LoadBank(F.Grow2BankPath))
            {
                Assert.True(two.Info.Growable, "grow2.bank is growable");
                Assert.Equal(2, two.Info.Shots, "grow2.bank: two shots");
                Assert.Equal(8, two.Info.K, "grow2.bank: k 8");
                using (MemoryBank grown = two.Add(new[] { F.GrowAdd }))
                {
                    Assert.True(!ReferenceEquals(grown, two) && !grown.IsDisposed, "a new bank");
                    BankInfo gi = grown.Info;
                    Assert.Equal(int.Parse(F.ExpectedGrow["shots"], CultureInfo.InvariantCulture), gi.Shots, "grown shots");
                    Assert.Equal(3, gi.Shots, "three shots");
                    Assert.True(gi.Growable, "the grown bank is growable");
                    Assert.Equal(F.ExpectedGrow["pixel_threshold_bits"], Fixture.Bits(gi.PixelThreshold).ToString("x8"), "pixel_threshold bits");
                    Assert.Equal(F.ExpectedGrow["image_threshold_bits"], Fixture.Bits(gi.ImageThreshold).ToString("x8"), "info image_threshold bits");
                    Assert.Equal(2, two.Info.Shots, "grow2.bank is unchanged");

                    using (ScoreResult r = M.Score(grown, F.Rgb, F.Width, F.Height, PixelFormat.Rgb8)) AssertFixture(F.ExpectedGrow, r, "Model.Score");
                    using (ScoreResult r = grown.Score(F.Image)) AssertFixture(F.ExpectedGrow, r, "MemoryBank.Score");
                    using (ScoreResult r = grown.Score(F.Image, new ScoreOptions { FindRegions = false })) AssertFixture(F.ExpectedGrow, r, "MemoryBank.Score, options");
                    ScoreResult[] batch = M.ScoreBatch(grown, new[] { F.Image, F.Image });
                    AssertFixture(F.ExpectedGrow, batch[1], "Model.ScoreBatch");
                    foreach (ScoreResult b in batch) b.Dispose();

                    // Saved and loaded back: still growable, the same bits.
                    string path = Path.Combine(Temp, "grow3.bank");
                    grown.Save(path);
                    using (MemoryBank loaded = M.LoadBank(path))
                    {
                        Assert.True(loaded.Info.Growable && loaded.Info.Shots == 3, "growable and three shots after loading");
                        using (ScoreResult r = loaded.Score(F.Image)) AssertFixture(F.ExpectedGrow, r, "saved and loaded");
                    }
                }
            }
        }

        private static void Test_AddAndMergeEqualTheBuildOnAllImages()
        {
            List<ImageBuffer> good = F.GoodImages().Take(3).ToList();
            using (MemoryBank three = M.BuildBank(good, GrowOptions()))
            using (MemoryBank two = M.BuildBank(good.Take(2), GrowOptions()))
            using (MemoryBank last = M.BuildBank(good.Skip(2), GrowOptions()))
            {
                Assert.True(three.Info.Growable && three.Info.Shots == 3, "a growable bank of three");
                Assert.True(two.Info.Growable && two.Info.Shots == 2, "a growable bank of two");
                var seen = new List<float>();
                using (MemoryBank added = two.Add(new[] { good[2] }, new SyncProgress(seen.Add)))
                    AssertSameBank(three, added, "Add(2-bank, third image)");
                AssertMonotoneToOne(seen, "Add progress");
                Assert.Equal(2, two.Info.Shots, "the bank added to is unchanged");

                seen.Clear();
                using (MemoryBank merged = two.Merge(last, new SyncProgress(seen.Add), CancellationToken.None))
                    AssertSameBank(three, merged, "Merge(bank of 0-1, bank of 2)");
                AssertMonotoneToOne(seen, "Merge progress");
                using (MemoryBank merged = two.Merge(last))
                    AssertSameBank(three, merged, "Merge without progress");
                Assert.Equal(1, last.Info.Shots, "the merged banks are unchanged");

                // A bank grown from a bank whose model was disposed: it encodes with its own.
                using (Model m = Model.Open(F.ModelDir))
                using (MemoryBank alone = m.BuildBank(good.Take(2), GrowOptions()))
                {
                    m.Dispose();
                    using (MemoryBank added = alone.Add(good.Skip(2)))
                        AssertSameBank(three, added, "Add after the model's disposal");
                }
            }
        }

        private static void Test_TiledBanksGrowAsTheBuildOnAllImages()
        {
            List<ImageBuffer> good = F.GoodImages().Take(3).ToList();
            using (MemoryBank three = M.BuildBank(good, TiledGrowOptions()))
            using (MemoryBank two = M.BuildBank(good.Take(2), TiledGrowOptions()))
            using (MemoryBank last = M.BuildBank(good.Skip(2), TiledGrowOptions()))
            {
                BankInfo ti = three.Info;
                Assert.True(ti.Growable && ti.IsTiled && ti.Tile == 48 && ti.TileOverlap == 0.25f && ti.TileLayout == TileLayout.Shared,
                    "a growable shared tiled bank");
                Assert.Equal(3, ti.Shots, "three shots");
                Assert.Equal(2, two.Info.Shots, "two shots");
                using (MemoryBank added = two.Add(new[] { good[2] }))
                {
                    BankInfo ai = added.Info;
                    Assert.True(ai.Growable && ai.Tile == 48 && ai.TileOverlap == 0.25f, "the grown bank keeps its tiling");
                    AssertSameBank(three, added, "Add(tiled 2-bank, third image)");
                    // Another image through both: the same thresholds and score bits.
                    using (ScoreResult a = added.Score(good[2], withMap: false))
                    using (ScoreResult b = three.Score(good[2], withMap: false))
                    {
                        Assert.Equal(Fixture.Bits(b.ImageScore), Fixture.Bits(a.ImageScore), "score bits of the third image");
                        Assert.Equal(Fixture.Bits(b.ImageThreshold), Fixture.Bits(a.ImageThreshold), "image threshold bits");
                        Assert.Equal(Fixture.Bits(b.PixelThreshold), Fixture.Bits(a.PixelThreshold), "pixel threshold bits");
                    }
                }
                using (MemoryBank merged = two.Merge(last))
                    AssertSameBank(three, merged, "Merge(tiled bank of 0-1, tiled bank of 2)");
                Assert.Equal(2, two.Info.Shots, "the bank added to is unchanged");
            }
        }

        private static void AssertMonotoneToOne(List<float> seen, string what)
        {
            Assert.True(seen.Count >= 2, what + ": reported: " + seen.Count);
            for (int i = 0; i < seen.Count; i++)
            {
                Assert.True(seen[i] >= 0f && seen[i] <= 1f, what + ": fraction in [0, 1]: " + seen[i]);
                if (i > 0) Assert.True(seen[i] >= seen[i - 1], what + ": non-decreasing at " + i + ": " + seen[i - 1] + " -> " + seen[i]);
            }
            Assert.Equal(1f, seen[seen.Count - 1], what + ": the last report is 1");
        }

        private static void Test_GrowErrors()
        {
            List<ImageBuffer> good = F.GoodImages().Take(3).ToList();
            using (MemoryBank growable = M.BuildBank(good, GrowOptions()))
            using (MemoryBank plain = M.BuildBank(good, new BankOptions { K = 8, MaxIterations = 5 }))
            using (MemoryBank k4 = M.BuildBank(good, new BankOptions { K = 4, MaxIterations = 5, Growable = true }))
            using (MemoryBank tiled = M.LoadBank(F.TiledBankPath))
            {
                Assert.True(!plain.Info.Growable, "built without Growable");
                // Add on a bank that is not growable.
                NexVitadException e = Assert.Status(Status.InvalidArgument, () => plain.Add(new[] { F.Image }).Dispose(), "Add on a bank that is not growable");
                Assert.True(e.Message.Contains("growable"), "the message says growable: " + e.Message);
                e = Assert.Status(Status.InvalidArgument, () => B.Add(new[] { F.Image }).Dispose(), "Add on tiny.bank");
                Assert.True(e.Message.Contains("growable"), "the message says growable: " + e.Message);
                // Merge with a bank that is not growable, either side.
                e = Assert.Status(Status.InvalidArgument, () => growable.Merge(plain).Dispose(), "Merge with a bank that is not growable");
                Assert.True(e.Message.Contains("growable"), "the message says growable: " + e.Message);
                e = Assert.Status(Status.InvalidArgument, () => plain.Merge(growable).Dispose(), "Merge of a bank that is not growable");
                Assert.True(e.Message.Contains("growable"), "the message says growable: " + e.Message);
                // Merge of banks with another k: a mismatch naming k.
                e = Assert.Status(Status.Mismatch, () => growable.Merge(k4).Dispose(), "Merge of banks with another k");
                Assert.True(e.Message.Contains("different k"), "the message names k: " + e.Message);
                e = Assert.Status(Status.Mismatch, () => k4.Merge(growable).Dispose(), "Merge of banks with another k, swapped");
                Assert.True(e.Message.Contains("different k"), "the message names k: " + e.Message);
                // tiled.bank was built without Growable: refused as any such bank (for that, not its tiling).
                Assert.True(tiled.Info.IsTiled && !tiled.Info.Growable, "tiled.bank is tiled, not growable");
                e = Assert.Status(Status.InvalidArgument, () => tiled.Add(new[] { F.Image }).Dispose(), "Add on tiled.bank");
                Assert.True(e.Message.Contains("growable"), "the message says growable: " + e.Message);
                e = Assert.Status(Status.InvalidArgument, () => growable.Merge(tiled).Dispose(), "Merge with tiled.bank");
                Assert.True(e.Message.Contains("growable"), "the message says growable: " + e.Message);
                // A growable tiled bank and a growable whole-image bank: a mismatch naming the tiling.
                using (MemoryBank tiledGrowable = M.BuildBank(good, TiledGrowOptions()))
                {
                    e = Assert.Status(Status.Mismatch, () => growable.Merge(tiledGrowable).Dispose(), "Merge of a whole-image and a tiled bank");
                    Assert.True(e.Message.Contains("tiling"), "the message names the tiling: " + e.Message);
                    e = Assert.Status(Status.Mismatch, () => tiledGrowable.Merge(growable).Dispose(), "Merge of a tiled and a whole-image bank");
                    Assert.True(e.Message.Contains("tiling"), "the message names the tiling: " + e.Message);
                }
                // A per-position bank grows only with images of its own size.
                var perPosition = new BankOptions { K = 8, MaxIterations = 5, Growable = true, Tile = 48, TileLayout = TileLayout.PerPosition };
                using (MemoryBank pp = M.BuildBank(good.Take(2), perPosition))
                {
                    e = Assert.Status(Status.InvalidArgument, () => pp.Add(new[] { F.GrowAdd }).Dispose(), "Add of another size to a per-position bank");
                    Assert.True(e.Message.Contains("one bank per tile position of 80x64 images; images[0] is " + F.GrowAddWidth + "x" + F.GrowAddHeight),
                        "the message names both sizes: " + e.Message);
                }

                // What the binding checks before native code.
                Assert.Throws<ArgumentNullException>(() => growable.Add(null), "null image list");
                Assert.Throws<ArgumentException>(() => growable.Add(new ImageBuffer[0]), "no images");
                Assert.Throws<ArgumentException>(() => growable.Add(new ImageBuffer[] { F.Image, null }), "null image in the list");
                Assert.Throws<ArgumentNullException>(() => growable.Merge(null), "null bank to merge");

                // Disposed banks, either side.
                MemoryBank disposed = M.BuildBank(good.Take(1), GrowOptions());
                disposed.Dispose();
                Assert.Throws<ObjectDisposedException>(() => disposed.Add(new[] { F.Image }), "Add on a disposed bank");
                Assert.Throws<ObjectDisposedException>(() => disposed.Merge(growable), "Merge of a disposed bank");
                Assert.Throws<ObjectDisposedException>(() => growable.Merge(disposed), "Merge with a disposed bank");

                // Nothing was spoiled.
                Assert.Equal(3, growable.Info.Shots, "the growable bank is unchanged");
                using (MemoryBank twice = growable.Merge(growable))
                    Assert.Equal(6, twice.Info.Shots, "a bank merged with itself has each image twice");
            }
            using (ScoreResult r = M.Score(B, F.Image))
                Assert.Equal(F.Expected["image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "still scores");
        }

        private static void Test_GrowCancellationAndProgressExceptions()
        {
            List<ImageBuffer> good = F.GoodImages().Take(3).ToList();
            using (MemoryBank two = M.BuildBank(good.Take(2), GrowOptions()))
            using (MemoryBank one = M.BuildBank(good.Skip(2), GrowOptions()))
            {
                using (var cts = new CancellationTokenSource())
                {
                    int reports = 0;
                    var progress = new SyncProgress(f => { if (++reports == 1) cts.Cancel(); });
                    OperationCanceledException e = Assert.Throws<OperationCanceledException>(
                        () => two.Add(new[] { good[2] }, progress, cts.Token), "cancelled Add");
                    Assert.Equal(cts.Token, e.CancellationToken, "the exception carries the token");
                    Assert.Equal(1, reports, "no progress after cancelling");
                }
                using (var cts = new CancellationTokenSource())
                {
                    int reports = 0;
                    var progress = new SyncProgress(f => { if (++reports == 1) cts.Cancel(); });
                    Assert.Throws<OperationCanceledException>(() => two.Merge(one, progress, cts.Token), "cancelled Merge");
                    Assert.Equal(1, reports, "no progress after cancelling the merge");
                }
                using (var cts = new CancellationTokenSource())
                {
                    cts.Cancel();
                    Assert.Throws<OperationCanceledException>(() => two.Add(new[] { good[2] }, null, cts.Token), "Add, already cancelled");
                    Assert.Throws<OperationCanceledException>(() => two.Merge(one, null, cts.Token), "Merge, already cancelled");
                }
                int thrown = 0;
                var boom = new SyncProgress(f => { thrown++; throw new InvalidTimeZoneException("boom from progress"); });
                InvalidTimeZoneException x = Assert.Throws<InvalidTimeZoneException>(() => two.Add(new[] { good[2] }, boom), "Add progress throws");
                Assert.Equal("boom from progress", x.Message, "the original exception");
                x = Assert.Throws<InvalidTimeZoneException>(() => two.Merge(one, boom), "Merge progress throws");
                Assert.True(x.StackTrace.Contains("Test_GrowCancellationAndProgressExceptions"), "stack trace kept: " + x.StackTrace);
                Assert.Equal(2, thrown, "each call stopped at the first exception");
                using (MemoryBank merged = two.Merge(one))
                    Assert.Equal(3, merged.Info.Shots, "the banks still merge afterwards");
            }
        }

        // ---- bad input -----------------------------------------------------------------------

        private static void Test_BadImagesThrowArgumentExceptions()
        {
            int w = F.Width, h = F.Height;
            Assert.Throws<ArgumentNullException>(() => M.Score(B, (byte[])null, 0, w, h, PixelFormat.Rgb8), "null array");
            Assert.Throws<ArgumentNullException>(() => M.Score(B, (ImageBuffer)null), "null ImageBuffer");
            Assert.Throws<ArgumentNullException>(() => M.Score(null, F.Image), "null bank");
            Assert.Throws<ArgumentException>(() => M.Score(B, new byte[0], w, h, PixelFormat.Rgb8), "empty array");
            Assert.Throws<ArgumentException>(() => M.Score(B, ReadOnlySpan<byte>.Empty, w, h, PixelFormat.Rgb8), "empty span");
            Assert.Throws<ArgumentOutOfRangeException>(() => M.Score(B, F.Rgb, 0, h, PixelFormat.Rgb8), "width 0");
            Assert.Throws<ArgumentOutOfRangeException>(() => M.Score(B, F.Rgb, w, -1, PixelFormat.Rgb8), "negative height");
            ArgumentException e = Assert.Throws<ArgumentException>(() => M.Score(B, F.Rgb, w, h, PixelFormat.Rgb8, w * 3 - 1), "stride below a row");
            Assert.Equal("stride", e.ParamName, "the stride is named");
            Assert.Throws<ArgumentOutOfRangeException>(() => M.Score(B, F.Rgb, w, h, PixelFormat.Rgb8, -4), "negative stride");
            Assert.Throws<ArgumentException>(() => M.Score(B, F.Rgb, w, h, PixelFormat.Rgb8, w * 3 + 1), "stride past the buffer end");
            Assert.Throws<ArgumentException>(() => M.Score(B, F.Rgb, w, h + 1, PixelFormat.Rgb8), "one row too many");
            Assert.Throws<ArgumentException>(() => M.Score(B, F.Rgb, w, h, PixelFormat.Rgba8), "RGBA needs 4 bytes a pixel");
            Assert.Throws<ArgumentOutOfRangeException>(() => M.Score(B, F.Rgb, w, h, (PixelFormat)9), "unknown pixel format");
            Assert.Throws<ArgumentOutOfRangeException>(() => M.Score(B, F.Rgb, F.Rgb.Length + 1, w, h, PixelFormat.Rgb8), "offset past the end");
            Assert.Throws<ArgumentException>(() => M.Score(B, F.Rgb, 1, w, h, PixelFormat.Rgb8), "offset leaves too few bytes");
            Assert.Throws<ArgumentException>(() => new ImageBuffer(new byte[10], 4, 4, PixelFormat.Gray8), "ImageBuffer checks on construction");
            Assert.Throws<ArgumentNullException>(() => M.BuildBank(null), "null image list");
            Assert.Throws<ArgumentException>(() => M.BuildBank(new ImageBuffer[0]), "no images");
            Assert.Throws<ArgumentException>(() => M.BuildBank(new ImageBuffer[] { F.Image, null }), "null image in the list");
            Assert.Throws<ArgumentException>(() => M.ScoreBatch(B, new ImageBuffer[] { null }), "null image in a batch");
            // The model still works after all of that.
            using (ScoreResult r = M.Score(B, F.Image))
                Assert.Equal(F.Expected["image_score_bits"], Fixture.Bits(r.ImageScore).ToString("x8"), "still scores");
        }

        // ---- disposal ------------------------------------------------------------------------

        private static void Test_DisposedObjectsThrowObjectDisposed()
        {
            Model m = Model.Open(F.ModelDir);
            MemoryBank bank = m.LoadBank(F.BankPath);
            ScoreResult r = m.Score(bank, F.Image);
            float score = r.ImageScore;
            r.Dispose();
            r.Dispose();
            Assert.True(r.IsDisposed, "result disposed");
            Assert.Throws<ObjectDisposedException>(() => { var x = r.Map; }, "Map after Dispose");
            Assert.Throws<ObjectDisposedException>(() => { var x = r[0, 0]; }, "indexer after Dispose");
            Assert.Throws<ObjectDisposedException>(() => r.ToArray(), "ToArray after Dispose");
            Assert.Equal(score, r.ImageScore, "scalars stay readable");

            m.Dispose();
            m.Dispose();
            Assert.True(m.IsDisposed, "model disposed");
            Assert.Throws<ObjectDisposedException>(() => m.Score(bank, F.Image), "Score on a disposed model");
            Assert.Throws<ObjectDisposedException>(() => m.LoadBank(F.BankPath), "LoadBank on a disposed model");
            Assert.Throws<ObjectDisposedException>(() => m.BuildBank(F.GoodImages()), "BuildBank on a disposed model");
            Assert.Throws<ObjectDisposedException>(() => m.ScoreBatch(bank, new[] { F.Image }), "ScoreBatch on a disposed model");
            Assert.Equal(M.Fingerprint, m.Fingerprint, "the fingerprint was copied at open");

            // The bank keeps the native model alive: it still saves and scores with an identical model.
            string path = Path.Combine(Temp, "after-model-dispose.bank");
            bank.Save(path);
            Assert.Equal(B.Info.Shots, bank.Info.Shots, "bank info after the model's disposal");
            using (ScoreResult again = M.Score(bank, F.Image))
                Assert.Equal(Fixture.Bits(score), Fixture.Bits(again.ImageScore), "the bank scores with an identical model");
            // ... and alone, with its own model (nexvitad_score with a NULL model, revision 2).
            Assert.True(Library.AbiRevision >= 2, "ABI revision 2: NULL model in nexvitad_score");
            using (ScoreResult alone = bank.Score(F.Image))
                Assert.Equal(Fixture.Bits(score), Fixture.Bits(alone.ImageScore), "the bank scores alone after its model's disposal");
            using (ScoreResult alone = bank.Score(F.Image, withMap: false))
                Assert.Equal(Fixture.Bits(score), Fixture.Bits(alone.ImageScore), "the bank scores alone without a map");

            bank.Dispose();
            bank.Dispose();
            Assert.True(bank.IsDisposed, "bank disposed");
            Assert.Throws<ObjectDisposedException>(() => M.Score(bank, F.Image), "Score with a disposed bank");
            Assert.Throws<ObjectDisposedException>(() => bank.Save(path), "Save on a disposed bank");
            Assert.Throws<ObjectDisposedException>(() => bank.Score(F.Image), "Score on a disposed bank");
            Assert.Throws<ObjectDisposedException>(() => { var i = bank.Info; }, "Info on a disposed bank");
        }

        private static void Test_DisposeWhileScoringNeverCrashes()
        {
            Model m = Model.Open(F.ModelDir);
            MemoryBank bank = m.LoadBank(F.BankPath);
            int ok = 0, disposed = 0;
            var started = new ManualResetEventSlim(false);
            Task[] workers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
            {
                for (int i = 0; i < 20; i++)
                {
                    try
                    {
                        using (m.Score(bank, F.Image, withMap: false)) Interlocked.Increment(ref ok);
                    }
                    catch (ObjectDisposedException)
                    {
                        Interlocked.Increment(ref disposed);
                        return;
                    }
                    finally
                    {
                        started.Set(); // also on an unexpected exception, which Task.WaitAll then reports
                    }
                }
            })).ToArray();
            started.Wait();
            m.Dispose();
            bank.Dispose();
            Task.WaitAll(workers); // any other exception fails the test here
            Assert.True(ok >= 1, "some scores finished before the dispose");
            Assert.True(ok + disposed <= 60, "each worker stopped at its first ObjectDisposedException");
        }

        // ---- progress and cancellation -----------------------------------------------------------

        /// <summary>Reports synchronously, unlike Progress&lt;T&gt; which posts to a SynchronizationContext.</summary>
        private sealed class SyncProgress : IProgress<float>
        {
            private readonly Action<float> _report;
            public SyncProgress(Action<float> report) { _report = report; }
            public void Report(float value) { _report(value); }
        }

        private static void Test_ProgressIsMonotoneAndReachesOne()
        {
            var seen = new List<float>();
            int thread = Thread.CurrentThread.ManagedThreadId;
            bool sameThread = true;
            using (MemoryBank bank = M.BuildBank(F.GoodImages(), null, new SyncProgress(f =>
            {
                seen.Add(f);
                sameThread &= Thread.CurrentThread.ManagedThreadId == thread;
                // Collecting mid-call must not free anything native code still holds (the callback, its state, pinned pixels).
                GC.Collect();
                GC.WaitForPendingFinalizers();
            })))
                Assert.True(!bank.IsDisposed, "built");
            Assert.True(seen.Count >= 3, "progress reported at least once per stage: " + seen.Count);
            Assert.True(sameThread, "progress runs on the building thread");
            for (int i = 0; i < seen.Count; i++)
            {
                Assert.True(seen[i] >= 0f && seen[i] <= 1f, "fraction in [0, 1]: " + seen[i]);
                if (i > 0) Assert.True(seen[i] >= seen[i - 1], "non-decreasing at " + i + ": " + seen[i - 1] + " -> " + seen[i]);
            }
            Assert.Equal(1f, seen[seen.Count - 1], "the last report is 1");
        }

        private static void Test_CancellationThroughTheProgressCallback()
        {
            using (var cts = new CancellationTokenSource())
            {
                int reports = 0;
                var progress = new SyncProgress(f => { if (++reports == 1) cts.Cancel(); });
                OperationCanceledException e = Assert.Throws<OperationCanceledException>(
                    () => M.BuildBank(F.GoodImages(), null, progress, cts.Token), "cancelled build");
                Assert.Equal(cts.Token, e.CancellationToken, "the exception carries the token");
                Assert.Equal(1, reports, "no progress after cancelling");
            }
            using (var cts = new CancellationTokenSource())
            {
                cts.Cancel();
                Assert.Throws<OperationCanceledException>(() => M.BuildBank(F.GoodImages(), null, null, cts.Token), "already cancelled");
            }
            // Cancelled on another thread mid-build, without any progress reporter.
            using (var cts = new CancellationTokenSource())
            {
                var progress = new SyncProgress(f => { if (f > 0.3f) cts.Cancel(); });
                Assert.Throws<OperationCanceledException>(() => M.BuildBank(F.GoodImages(), null, progress, cts.Token), "cancelled in a later stage");
            }
            using (MemoryBank bank = M.BuildBank(F.GoodImages().Take(2)))
                Assert.Equal(2, bank.Info.Shots, "the model builds again after cancellations");
        }

        private static void Test_ProgressExceptionPropagatesWithoutCrossingNative()
        {
            int reports = 0;
            var progress = new SyncProgress(f => { reports++; throw new InvalidTimeZoneException("boom from progress"); });
            InvalidTimeZoneException e = Assert.Throws<InvalidTimeZoneException>(() => M.BuildBank(F.GoodImages(), null, progress), "progress throws");
            Assert.Equal("boom from progress", e.Message, "the original exception");
            Assert.True(e.StackTrace.Contains("Test_ProgressExceptionPropagatesWithoutCrossingNative"), "stack trace kept: " + e.StackTrace);
            Assert.Equal(1, reports, "the build stopped at the first exception");
        }

        // ---- threads -----------------------------------------------------------------------------

        private static void Test_ParallelScoringEqualsSerial()
        {
            var images = new List<ImageBuffer> { F.Image, new ImageBuffer(F.Mirrored(), F.Width, F.Height, PixelFormat.Rgb8) };
            images.AddRange(F.GoodImages());
            var serial = images.Select(img => { using (var r = M.Score(B, img)) return Outcome.Of(r); }).ToArray();
            const int Rounds = 4;
            var parallel = new Outcome[images.Count * Rounds];
            Parallel.For(0, parallel.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            {
                using (ScoreResult r = M.Score(B, images[i % images.Count]))
                    parallel[i] = Outcome.Of(r);
            });
            for (int i = 0; i < parallel.Length; i++)
                Assert.Equal(serial[i % images.Count], parallel[i], "parallel score " + i);
            Assert.True(serial.Select(o => o.ScoreBits).Distinct().Count() > 1, "the images score differently");

            // Tasks on dedicated threads, each with its own span overload call.
            Task<Outcome>[] tasks = Enumerable.Range(0, 6).Select(i => Task.Factory.StartNew(() =>
            {
                using (ScoreResult r = M.Score(B, new ReadOnlySpan<byte>(F.Rgb), F.Width, F.Height, PixelFormat.Rgb8))
                    return Outcome.Of(r);
            }, TaskCreationOptions.LongRunning)).ToArray();
            foreach (Task<Outcome> t in tasks)
                Assert.Equal(serial[0], t.Result, "task score");
        }

        private static void Test_ConcurrentBuildsAreDeterministic()
        {
            var options = new BankOptions { K = 10, MaxIterations = 20 };
            Task<Outcome>[] builds = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                using (MemoryBank bank = M.BuildBank(F.GoodImages(), options, null, CancellationToken.None))
                using (ScoreResult r = M.Score(bank, F.Image))
                    return Outcome.Of(r);
            })).ToArray();
            Assert.Equal(builds[0].Result, builds[1].Result, "two concurrent builds give the same bank");
        }

        // ---- training --------------------------------------------------------------------------

        private static readonly string[] TrainSources = { "stripes", "weave" };

        /// <summary>A short run: one epoch of batch 4, a narrow decoder, one perturbed copy.</summary>
        private static TrainOptions QuickTrain()
        {
            return new TrainOptions { Epochs = 1, Batch = 4, DecoderWidth = 8, Copies = 1, CheckpointEvery = 0, Seed = 3 };
        }

        private sealed class SyncTrainProgress : IProgress<TrainProgress>
        {
            private readonly Action<TrainProgress> _report;
            public SyncTrainProgress(Action<TrainProgress> report) { _report = report; }
            public void Report(TrainProgress value) { _report(value); }
        }

        private static void Test_TrainOptionsDefaults()
        {
            Assert.True(NativeMethods.nexvitad_abi_revision() >= NativeMethods.AbiRevision, "the library has the training revision");
            var o = new TrainOptions();
            Assert.Equal(4, o.Epochs, "epochs");
            Assert.Equal(8, o.Batch, "batch");
            Assert.Equal(null, o.Theta, "theta: the model's");
            Assert.Equal(null, o.Lambda1, "lambda1: the model's");
            Assert.True(o.Flips && !o.Resume && !o.TargetTest, "flags");
            o.Theta = 0.8;
            Assert.Equal(0.8, o.Theta.Value, "theta set");
        }

        private static void Test_TrainWritesAModelThatScores()
        {
            string outDir = Path.Combine(Temp, "trained");
            var seen = new List<TrainProgress>();
            TrainResult r = Trainer.Train(M, TrainRoot, TrainSources, "grain", outDir, QuickTrain(),
                new SyncTrainProgress(p => seen.Add(p)));
            Assert.True(seen.Count > 0 && seen[0].Phase == TrainPhase.Encode && seen[seen.Count - 1].Phase == TrainPhase.Step,
                "progress: encoding, then steps");
            TrainProgress last = seen[seen.Count - 1];
            Assert.Equal(last.Total, r.Steps, "steps = last report's total");
            Assert.Equal(last.Done, last.Total, "the last report is the last step");
            Assert.Equal(r.Steps, r.StepsRun, "all steps ran");
            Assert.Equal(3, r.TargetImages, "target images");
            Assert.Equal(last.EpochMean.Loss, r.LastEpoch.Loss, "result loss = last epoch's mean");
            Assert.True(r.LastEpoch.Coverage >= 0 && r.LastEpoch.Coverage <= 1, "coverage in [0, 1]");
            using (Model trained = Model.Open(outDir))
            {
                Assert.True(trained.Fingerprint != M.Fingerprint, "a new fingerprint");
                using (MemoryBank bank = trained.BuildBank(F.GoodImages().Take(2)))
                using (ScoreResult s = trained.Score(bank, F.Image))
                    Assert.True(!float.IsNaN(s.ImageScore) && s.Map.Length == F.Width * F.Height, "the trained model scores");
            }
        }

        private static void Test_TrainCancelledByTokenResumesToTheSameHead()
        {
            string full = Path.Combine(Temp, "train-full"), part = Path.Combine(Temp, "train-part");
            TrainResult whole = Trainer.Train(M, TrainRoot, TrainSources, "grain", full, QuickTrain());
            using (var cts = new CancellationTokenSource())
            {
                var progress = new SyncTrainProgress(p => { if (p.Phase == TrainPhase.Step && p.Done == 1) cts.Cancel(); });
                OperationCanceledException e = Assert.Throws<OperationCanceledException>(
                    () => Trainer.Train(M, TrainRoot, TrainSources, "grain", part, QuickTrain(), progress, cts.Token), "cancelled run");
                Assert.Equal(cts.Token, e.CancellationToken, "the exception carries the token");
            }
            Assert.True(File.Exists(Path.Combine(part, "checkpoint.safetensors")), "a checkpoint is left");
            TrainOptions resume = QuickTrain();
            resume.Resume = true;
            TrainResult r = Trainer.Train(M, TrainRoot, TrainSources, "grain", part, resume);
            Assert.Equal(whole.Steps - 1, r.StepsRun, "the resumed call runs the remaining steps");
            Assert.True(File.ReadAllBytes(Path.Combine(full, "head.safetensors"))
                .SequenceEqual(File.ReadAllBytes(Path.Combine(part, "head.safetensors"))), "resumed head = unbroken run's head");
        }

        /// <summary>The feature cache (C ABI revision 7): a shared folder encodes once, the memory
        /// budget does not change the head, a cache of other data and a budget below one step are refused.</summary>
        private static void Test_TrainFeatureCache()
        {
            Assert.True(NativeMethods.nexvitad_abi_revision() >= 7, "library ABI revision >= 7");
            string dir = Path.Combine(Temp, "train-cache");
            string shared = Path.Combine(dir, "cache");
            TrainOptions first = QuickTrain();
            first.CacheDir = shared;
            TrainResult r1 = Trainer.Train(M, TrainRoot, TrainSources, "grain", Path.Combine(dir, "first"), first);
            Assert.Equal(new FileInfo(Path.Combine(shared, "features.nxcache")).Length, r1.CacheBytes, "CacheBytes is the file's size");
            Assert.Equal(22L, r1.Encoded, "16 source images and 3 target images with a copy each, encoded");
            Assert.Equal(0L, r1.Reused, "nothing to reuse in a new folder");
            Assert.True(!File.Exists(Path.Combine(dir, "first", "features.nxcache")), "the cache lives in CacheDir");

            long perSet = (r1.CacheBytes - 4096) / 22;
            TrainOptions second = QuickTrain();
            second.CacheDir = shared;
            second.CacheMem = 10 * perSet;  // one step's feature sets: the rest are read from the file
            TrainResult r2 = Trainer.Train(M, TrainRoot, TrainSources, "grain", Path.Combine(dir, "second"), second);
            Assert.Equal(0L, r2.Encoded, "a shared cache is not encoded again");
            Assert.Equal(22L, r2.Reused, "every feature set reused");
            Assert.True(File.ReadAllBytes(Path.Combine(dir, "first", "head.safetensors"))
                .SequenceEqual(File.ReadAllBytes(Path.Combine(dir, "second", "head.safetensors"))), "streamed head = in-memory head");

            TrainOptions other = QuickTrain();
            other.CacheDir = shared;
            other.Seed = 4;
            NexVitadException e = Assert.Status(Status.Mismatch,
                () => Trainer.Train(M, TrainRoot, TrainSources, "grain", Path.Combine(dir, "other"), other), "a cache of other data");
            Assert.True(e.Message.Contains("other data"), "message: " + e.Message);
            TrainOptions small = QuickTrain();
            small.CacheMem = 1 << 20;
            e = Assert.Status(Status.InvalidArgument,
                () => Trainer.Train(M, TrainRoot, TrainSources, "grain", Path.Combine(dir, "small"), small), "a budget below one step");
            Assert.True(e.Message.Contains("below one training step"), "message: " + e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => small.CacheMem = -1, "negative CacheMem");
            Assert.Throws<ArgumentException>(() => small.CacheDir = "a\0b", "NUL in CacheDir");
        }

        private static void Test_TrainBadInput()
        {
            string outDir = Path.Combine(Temp, "train-bad");
            NexVitadException e = Assert.Status(Status.InvalidArgument,
                () => Trainer.Train(M, TrainRoot, new[] { "stripes", "grain" }, "grain", outDir, QuickTrain()), "target among sources");
            Assert.True(e.Message.Contains("also a source domain"), "message: " + e.Message);
            TrainOptions bad = QuickTrain();
            bad.Theta = 1.5;
            e = Assert.Status(Status.InvalidArgument, () => Trainer.Train(M, TrainRoot, TrainSources, "grain", outDir, bad), "theta 1.5");
            Assert.True(e.Message.Contains("(0, 1)"), "message: " + e.Message);
            Assert.Status(Status.Io, () => Trainer.Train(M, Path.Combine(Temp, "no-such-root"), TrainSources, "grain", outDir, QuickTrain()),
                "missing data root");
            Assert.Throws<ArgumentNullException>(() => Trainer.Train(M, TrainRoot, null, "grain", outDir), "null sources");
            Model closed = Model.Open(F.ModelDir);
            closed.Dispose();
            Assert.Throws<ObjectDisposedException>(() => Trainer.Train(closed, TrainRoot, TrainSources, "grain", outDir), "disposed model");
        }

        // ---- logging -------------------------------------------------------------------------

        private static void Test_LoggerReceivesLibraryMessages()
        {
            var messages = new List<string>();
            try
            {
                Library.SetLogger((level, message) => { lock (messages) messages.Add(level + " " + message); });
                using (Model m = Model.Open(F.ModelDir)) { }
                Library.SetLogger((level, message) => { throw new InvalidOperationException("a failing logger"); });
                using (Model m = Model.Open(F.ModelDir))
                    Assert.Equal(M.Fingerprint, m.Fingerprint, "a throwing logger does not break the call");
            }
            finally
            {
                Library.SetLogger(null);
            }
            Assert.True(messages.Any(s => s.StartsWith("Info ") && s.Contains("opened model")), "an Info message on open: " + string.Join(" | ", messages));
            int count = messages.Count;
            using (Model m = Model.Open(F.ModelDir)) { }
            Assert.Equal(count, messages.Count, "no messages after SetLogger(null)");
        }
    }
}
