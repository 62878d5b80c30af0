//! Reader for the MVTec AD folder layout, and image/mask loading with decode limits.
//!
//! ```text
//! <root>/<category>/train/good/*.png
//! <root>/<category>/test/<defect or good>/*.png
//! <root>/<category>/ground_truth/<defect>/<stem>_mask.png
//! ```
//! Listings are sorted by file name so every run sees the same order (bank building and
//! metrics must be reproducible). Hidden entries (leading '.') are ignored.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File extensions (compared case-insensitively) treated as images when listing folders.
/// Note: this build's `image` crate decodes PNG and JPEG; a BMP is listed but fails to
/// load with a clear [`Error::Format`].
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp"];

/// Largest accepted image side when decoding (hostile files can claim any size).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest total allocation the decoder may make for one image.
pub const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// Name of the folder holding normal images, in train and test.
pub const GOOD: &str = "good";

/// One test image with its label and, for defective images, its ground-truth mask if the
/// dataset has one (OK/NG folders without `ground_truth/` are allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// `"good"` or the defect type (the name of its folder under `test/`).
    pub defect: String,
    /// Ground-truth mask; `None` for good samples and for defective ones without a mask
    /// file (image-level labels only).
    pub mask: Option<PathBuf>,
}

impl Sample {
    /// True for a defective (non-`good`) sample.
    pub fn is_anomalous(&self) -> bool {
        self.defect != GOOD
    }
}

/// One category (domain) of an MVTec-layout dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// Category name, the folder's name.
    pub name: String,
    /// The category folder, `<root>/<name>`.
    pub root: PathBuf,
    /// Normal training images, sorted by file name.
    pub train_good: Vec<PathBuf>,
    /// Test images, sorted by defect folder name, then file name.
    pub test: Vec<Sample>,
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Non-hidden entries of `dir`, sorted by file name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("list folder", dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list folder", dir, e))?;
        if !is_hidden(&entry.file_name()) {
            out.push(entry.path());
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

/// Image files directly inside `dir` (following symlinks), sorted by file name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_file() && is_image_name(p))
        .collect())
}

fn utf8_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(OsStr::to_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::format(path, "folder name is not valid UTF-8"))
}

/// Opens `<root>/<name>` as an MVTec-layout category.
///
/// Errors: the category folder missing, `train/good` missing or without images. A missing
/// `test/` folder is allowed (a category used only to fit a bank) and gives no samples; a
/// defective test image without `ground_truth/<defect>/<stem>_mask.png` gets `mask: None`
/// (callers that need masks, such as training sources, check for it).
pub fn open_category(root: &Path, name: &str) -> Result<Category> {
    let single_component = {
        let mut c = Path::new(name).components();
        matches!((c.next(), c.next()), (Some(std::path::Component::Normal(_)), None))
    };
    if !single_component {
        return Err(Error::invalid(format!(
            "category name '{name}' must be a single folder name"
        )));
    }
    let cat_root = root.join(name);
    if !cat_root.is_dir() {
        return Err(Error::invalid(format!(
            "category '{name}' not found: '{}' is not a folder",
            cat_root.display()
        )));
    }

    let train_dir = cat_root.join("train").join(GOOD);
    if !train_dir.is_dir() {
        return Err(Error::invalid(format!(
            "category '{name}' has no training folder '{}'",
            train_dir.display()
        )));
    }
    let train_good = image_files(&train_dir)?;
    if train_good.is_empty() {
        return Err(Error::invalid(format!(
            "category '{name}': no images ({}) in '{}'",
            IMAGE_EXTENSIONS.join("/"),
            train_dir.display()
        )));
    }

    let mut test = Vec::new();
    let test_dir = cat_root.join("test");
    if test_dir.is_dir() {
        for defect_dir in sorted_entries(&test_dir)?.into_iter().filter(|p| p.is_dir()) {
            let defect = utf8_name(&defect_dir)?;
            for path in image_files(&defect_dir)? {
                let mask = if defect == GOOD { None } else { mask_path(&cat_root, &defect, &path)? };
                test.push(Sample {
                    path,
                    defect: defect.clone(),
                    mask,
                });
            }
        }
    }

    Ok(Category {
        name: name.to_owned(),
        root: cat_root,
        train_good,
        test,
    })
}

/// `<cat_root>/ground_truth/<defect>/<stem>_mask.png` if that file exists.
fn mask_path(cat_root: &Path, defect: &str, image: &Path) -> Result<Option<PathBuf>> {
    let stem = image
        .file_stem()
        .ok_or_else(|| Error::format(image, "image file has no name"))?;
    let mut file = stem.to_os_string();
    file.push("_mask.png");
    let mask = cat_root.join("ground_truth").join(defect).join(file);
    Ok(mask.is_file().then_some(mask))
}

/// Names of the categories under `root` (sub-folders having `train/good`), sorted.
pub fn list_categories(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in sorted_entries(root)? {
        if dir.join("train").join(GOOD).is_dir() {
            out.push(utf8_name(&dir)?);
        }
    }
    Ok(out)
}

/// Decodes an image file with size and allocation limits. A decoder panic on a hostile
/// file is caught and reported as a format error instead of unwinding into the caller.
fn decode(path: &Path) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io("open image", path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io("read image", path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = reader;
    reader.limits(limits);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || reader.decode())) {
        Ok(Ok(img)) => Ok(img),
        Ok(Err(e)) => Err(Error::format(path, format!("cannot decode image: {e}"))),
        Err(_) => Err(Error::format(path, "image decoder failed (malformed file)")),
    }
}

/// Width and height of an image file, from its header (nothing is decoded).
pub fn image_dimensions(path: &Path) -> Result<(u32, u32)> {
    image::ImageReader::open(path)
        .map_err(|e| Error::io("open image", path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io("read image", path, e))?
        .into_dimensions()
        .map_err(|e| Error::format(path, format!("cannot read the image size: {e}")))
}

/// Loads a gray or colour PNG/JPEG as 8-bit RGB (16-bit channels are scaled, alpha dropped).
pub fn load_rgb(path: &Path) -> Result<image::RgbImage> {
    Ok(decode(path)?.to_rgb8())
}

/// Loads a ground-truth mask as one bool per pixel (row-major), `true` where any channel
/// is nonzero. The mask must be `width x height`, the size of its image.
pub fn load_mask(path: &Path, width: u32, height: u32) -> Result<Vec<bool>> {
    use image::DynamicImage as D;
    let img = decode(path)?;
    if (img.width(), img.height()) != (width, height) {
        return Err(Error::format(
            path,
            format!("ground-truth mask is {}x{} but its image is {width}x{height}", img.width(), img.height()),
        ));
    }
    // Test nonzero on the stored values: converting to 8-bit luma first could round a
    // faint 16-bit or coloured label down to zero.
    Ok(match img {
        D::ImageLuma8(m) => m.into_raw().into_iter().map(|v| v != 0).collect(),
        D::ImageLuma16(m) => m.into_raw().into_iter().map(|v| v != 0).collect(),
        other => other.to_rgb16().pixels().map(|p| p.0.iter().any(|&v| v != 0)).collect(),
    })
}

/// Loads a region-of-interest mask image (any size; non-zero in any channel = inspect) as
/// a [`crate::roi::Roi`]. An all-zero mask is refused, naming the file.
pub fn load_roi(path: &Path) -> Result<crate::roi::Roi> {
    let img = decode(path)?;
    let (w, h) = (img.width(), img.height());
    let on: Vec<u8> = match img {
        image::DynamicImage::ImageLuma8(m) => m.into_raw(),
        other => other.to_rgb16().pixels().map(|p| u8::from(p.0.iter().any(|&v| v != 0))).collect(),
    };
    crate::roi::Roi::new(&on, w, h, 0).map_err(|e| Error::format(path, format!("region-of-interest mask: {e}")))
}

/// Expands command-line arguments into image files: a file is taken as given, a folder
/// contributes its image files (sorted by name, hidden ones skipped).
pub fn collect_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let files = image_files(p)?;
            if files.is_empty() {
                return Err(Error::invalid(format!(
                    "no images ({}) in folder '{}'",
                    IMAGE_EXTENSIONS.join("/"),
                    p.display()
                )));
            }
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::io(
                "find image",
                p,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn png(path: &Path, w: u32, h: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
            .save(path)
            .unwrap();
    }

    fn mask_png(path: &Path, w: u32, h: u32, on: &[(u32, u32)]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut m = image::GrayImage::new(w, h);
        for &(x, y) in on {
            m.put_pixel(x, y, image::Luma([255]));
        }
        m.save(path).unwrap();
    }

    /// A small valid category: 2 train images, 1 good + 2 scratch test images.
    fn layout(root: &Path) {
        let c = root.join("bottle");
        png(&c.join("train/good/001.png"), 8, 6);
        png(&c.join("train/good/000.PNG"), 8, 6);
        fs::write(c.join("train/good/.hidden.png"), b"x").unwrap();
        fs::write(c.join("train/good/notes.txt"), b"x").unwrap();
        png(&c.join("test/good/000.png"), 8, 6);
        png(&c.join("test/scratch/001.png"), 8, 6);
        png(&c.join("test/scratch/000.png"), 8, 6);
        mask_png(&c.join("ground_truth/scratch/000_mask.png"), 8, 6, &[(1, 1)]);
        mask_png(&c.join("ground_truth/scratch/001_mask.png"), 8, 6, &[(2, 3)]);
    }

    #[test]
    fn data_open_category_reads_layout_sorted() {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path());
        fs::create_dir_all(dir.path().join("notacategory")).unwrap();
        let cat = open_category(dir.path(), "bottle").unwrap();
        let names: Vec<_> = cat
            .train_good
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["000.PNG", "001.png"]);
        let test: Vec<_> = cat
            .test
            .iter()
            .map(|s| {
                (
                    s.defect.as_str(),
                    s.path.file_name().unwrap().to_str().unwrap(),
                    s.is_anomalous(),
                )
            })
            .collect();
        assert_eq!(
            test,
            [
                ("good", "000.png", false),
                ("scratch", "000.png", true),
                ("scratch", "001.png", true)
            ]
        );
        assert!(cat.test[0].mask.is_none());
        assert!(cat.test[2]
            .mask
            .as_ref()
            .unwrap()
            .ends_with("ground_truth/scratch/001_mask.png"));
        assert_eq!(list_categories(dir.path()).unwrap(), ["bottle"]);
    }

    #[test]
    fn data_open_category_errors() {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path());
        let e = open_category(dir.path(), "cable").unwrap_err().to_string();
        assert!(e.contains("cable"), "{e}");
        assert!(open_category(dir.path(), "../x").is_err());

        // A defective image without its mask is an image-level label, not an error.
        fs::remove_file(dir.path().join("bottle/ground_truth/scratch/001_mask.png")).unwrap();
        let cat = open_category(dir.path(), "bottle").unwrap();
        assert!(cat.test[1].mask.is_some() && cat.test[2].mask.is_none() && cat.test[2].is_anomalous());

        let empty = dir.path().join("empty/train/good");
        fs::create_dir_all(&empty).unwrap();
        let e = open_category(dir.path(), "empty").unwrap_err().to_string();
        assert!(e.contains("no images"), "{e}");
    }

    #[test]
    fn data_load_rgb_and_mask() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        image::GrayImage::from_fn(5, 3, |x, _| image::Luma([x as u8 * 10]))
            .save(&p)
            .unwrap();
        let rgb = load_rgb(&p).unwrap();
        assert_eq!(rgb.dimensions(), (5, 3));
        assert_eq!(rgb.get_pixel(2, 1).0, [20, 20, 20]);

        let m = dir.path().join("m.png");
        mask_png(&m, 5, 3, &[(4, 2), (0, 0)]);
        let mask = load_mask(&m, 5, 3).unwrap();
        assert_eq!(mask.iter().filter(|&&b| b).count(), 2);
        assert!(mask[0] && mask[14]);
        let e = load_mask(&m, 6, 3).unwrap_err().to_string();
        assert!(e.contains("5x3") && e.contains("6x3"), "{e}");

        // 16-bit mask with a faint label still counts as defect.
        let m16 = dir.path().join("m16.png");
        let mut img = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::new(2, 2);
        img.put_pixel(1, 0, image::Luma([1]));
        img.save(&m16).unwrap();
        assert_eq!(load_mask(&m16, 2, 2).unwrap(), [false, true, false, false]);
    }

    #[test]
    fn data_load_rejects_garbage_and_huge() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.png");
        fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
        match load_rgb(&bad) {
            Err(Error::Format { path, .. }) => assert_eq!(path, bad),
            other => panic!("expected format error, got {other:?}"),
        }
        // A PNG header claiming 100000 x 100000 pixels must be refused before allocating.
        let huge = dir.path().join("huge.png");
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(&[0u8; 3], 1, 1, image::ExtendedColorType::Rgb8)
            .map(|_| ())
            .unwrap();
        // Patch IHDR width/height (bytes 16..24) and its CRC.
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        fs::write(&huge, &bytes).unwrap();
        assert!(matches!(load_rgb(&huge), Err(Error::Format { .. })));
        assert!(matches!(
            load_rgb(&dir.path().join("missing.png")),
            Err(Error::Io { .. })
        ));
    }

    use image::ImageEncoder;

    #[test]
    fn data_collect_images_files_and_folders() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("f/b.jpg.png"), 2, 2);
        png(&dir.path().join("f/a.png"), 2, 2);
        fs::write(dir.path().join("f/readme.md"), b"x").unwrap();
        png(&dir.path().join("single.png"), 2, 2);
        let got = collect_images(&[dir.path().join("single.png"), dir.path().join("f")]).unwrap();
        let names: Vec<_> = got.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["single.png", "a.png", "b.jpg.png"]);
        assert!(collect_images(&[dir.path().join("nope")]).is_err());
        fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(collect_images(&[dir.path().join("empty")]).is_err());
    }
}
