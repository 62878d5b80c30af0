// inspect: build a memory bank from a folder of good images, then score images against it.
//
//   inspect MODEL_DIR GOOD_DIR IMAGE... [--size WxH] [--save-bank FILE]
//
// Images are binary PPM (P6, RGB) or PGM (P5, gray) files, or raw packed RGB8 files (*.rgb,
// with --size WxH), so the example needs no imaging library. Prints one line per image:
//   PATH <tab> score=S <tab> threshold=T <tab> defect-pixels=P% <tab> OK|DEFECT
// Ctrl+C while the bank is being built cancels it.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using NexVitad;

internal static class Inspect
{
    private static int Main(string[] args)
    {
        var positional = new List<string>();
        int rawWidth = 0, rawHeight = 0;
        string saveBank = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--size" && i + 1 < args.Length)
            {
                string[] wh = args[++i].Split('x');
                if (wh.Length != 2 || !int.TryParse(wh[0], out rawWidth) || !int.TryParse(wh[1], out rawHeight))
                    return Usage("--size wants WxH, e.g. 640x480");
            }
            else if (args[i] == "--save-bank" && i + 1 < args.Length)
                saveBank = args[++i];
            else
                positional.Add(args[i]);
        }
        if (positional.Count < 3)
            return Usage(null);

        try
        {
            string[] goodFiles = Directory.GetFiles(positional[1])
                .Where(f => IsImageFile(f))
                .OrderBy(f => f, StringComparer.Ordinal)
                .ToArray();
            if (goodFiles.Length == 0)
                return Usage("no .ppm, .pgm or .rgb files in " + positional[1]);
            List<ImageBuffer> good = goodFiles.Select(f => Load(f, rawWidth, rawHeight)).ToList();

            using (var cts = new CancellationTokenSource())
            using (Model model = Model.Open(positional[0]))
            {
                ConsoleCancelEventHandler onCtrlC = (s, e) => { e.Cancel = true; cts.Cancel(); };
                Console.CancelKeyPress += onCtrlC;
                MemoryBank bank;
                try
                {
                    // Progress<T> would post to a thread pool here (no UI context); report inline instead.
                    int shown = -1;
                    var progress = new InlineProgress(f =>
                    {
                        int percent = (int)(f * 100);
                        if (percent / 10 != shown / 10)
                            Console.Error.Write("\rbuilding bank from " + good.Count + " images: " + percent + "%   ");
                        shown = percent;
                    });
                    bank = model.BuildBank(good, new BankOptions(), progress, cts.Token);
                    Console.Error.WriteLine();
                }
                finally
                {
                    Console.CancelKeyPress -= onCtrlC;
                }
                using (bank)
                {
                    BankInfo info = bank.Info;
                    Console.Error.WriteLine("bank: " + info.Vectors + " prototypes from " + info.Shots + " images, image threshold "
                        + info.ImageThreshold.ToString("G6", CultureInfo.InvariantCulture));
                    if (saveBank != null)
                        bank.Save(saveBank);
                    foreach (string path in positional.Skip(2))
                    {
                        ImageBuffer image = Load(path, rawWidth, rawHeight);
                        using (ScoreResult r = model.Score(bank, image))
                        {
                            int above = 0;
                            foreach (float v in r.Map)
                                if (v > r.PixelThreshold)
                                    above++;
                            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                                "{0}\tscore={1:G9}\tthreshold={2:G9}\tdefect-pixels={3:F2}%\t{4}",
                                path, r.ImageScore, r.ImageThreshold, 100.0 * above / r.Map.Length, r.IsAnomalous ? "DEFECT" : "OK"));
                        }
                    }
                }
            }
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("\ncancelled");
            return 130;
        }
        catch (NexVitadException e)
        {
            Console.Error.WriteLine("inspect: " + e.StatusName + ": " + e.Message);
            return 1;
        }
        catch (Exception e) when (e is IOException || e is InvalidDataException || e is ArgumentException || e is UnauthorizedAccessException)
        {
            Console.Error.WriteLine("inspect: " + e.Message);
            return 1;
        }
    }

    private static int Usage(string problem)
    {
        if (problem != null)
            Console.Error.WriteLine("inspect: " + problem);
        Console.Error.WriteLine("usage: inspect MODEL_DIR GOOD_DIR IMAGE... [--size WxH (for raw .rgb files)] [--save-bank FILE]");
        return 2;
    }

    private static bool IsImageFile(string path)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        return ext == ".ppm" || ext == ".pgm" || ext == ".rgb";
    }

    private static ImageBuffer Load(string path, int rawWidth, int rawHeight)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (Path.GetExtension(path).ToLowerInvariant() == ".rgb")
        {
            if (rawWidth <= 0 || rawHeight <= 0)
                throw new ArgumentException(path + " is raw RGB: give its size with --size WxH");
            return new ImageBuffer(bytes, rawWidth, rawHeight, PixelFormat.Rgb8);
        }
        return Pnm.Decode(bytes, path);
    }

    private sealed class InlineProgress : IProgress<float>
    {
        private readonly Action<float> _report;
        public InlineProgress(Action<float> report) { _report = report; }
        public void Report(float value) { _report(value); }
    }
}

/// <summary>Binary PPM (P6) and PGM (P5) with 8-bit samples: a header of ASCII fields, then pixels.</summary>
internal static class Pnm
{
    public static ImageBuffer Decode(byte[] data, string name)
    {
        int pos = 0;
        string magic = Field(data, ref pos, name);
        if (magic != "P6" && magic != "P5")
            throw new InvalidDataException(name + ": not a binary PPM/PGM (magic " + magic + ", want P6 or P5)");
        int width = Number(data, ref pos, name, "width");
        int height = Number(data, ref pos, name, "height");
        int maxval = Number(data, ref pos, name, "maxval");
        if (maxval <= 0 || maxval > 255)
            throw new InvalidDataException(name + ": maxval " + maxval + " (only 8-bit images are supported)");
        pos++; // the single whitespace byte after maxval
        PixelFormat format = magic == "P6" ? PixelFormat.Rgb8 : PixelFormat.Gray8;
        int channels = magic == "P6" ? 3 : 1;
        long needed = (long)width * height * channels;
        if (pos > data.Length || data.Length - pos < needed)
            throw new InvalidDataException(name + ": truncated (" + (data.Length - pos) + " pixel bytes, want " + needed + ")");
        return new ImageBuffer(data, pos, width, height, format);
    }

    private static string Field(byte[] data, ref int pos, string name)
    {
        while (pos < data.Length)
        {
            if (data[pos] == (byte)'#')
                while (pos < data.Length && data[pos] != (byte)'\n') pos++;
            else if (char.IsWhiteSpace((char)data[pos]))
                pos++;
            else
                break;
        }
        int start = pos;
        while (pos < data.Length && !char.IsWhiteSpace((char)data[pos]) && data[pos] != (byte)'#')
            pos++;
        if (pos == start)
            throw new InvalidDataException(name + ": truncated header");
        return System.Text.Encoding.ASCII.GetString(data, start, pos - start);
    }

    private static int Number(byte[] data, ref int pos, string name, string what)
    {
        string s = Field(data, ref pos, name);
        int v;
        if (!int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v) || v <= 0)
            throw new InvalidDataException(name + ": bad " + what + " '" + s + "'");
        return v;
    }
}
