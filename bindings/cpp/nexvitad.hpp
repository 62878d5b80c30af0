// nexvitad.hpp - header-only C++17 binding of libnexvitad (few-shot industrial defect detection).
//
// Wraps only the C ABI of <nexvitad.h>; link with libnexvitad (CMake: nexvitad::nexvitad).
//
//     #include <nexvitad.hpp>
//
//     nexvitad::Model model("models/tiny");
//     std::vector<nexvitad::ImageView> good = ...;           // or cv::Mat, see below
//     nexvitad::Bank bank = model.build_bank(good);
//     bank.save("part.bank");                               // later: model.load_bank("part.bank")
//     nexvitad::Result r = model.score(bank, nexvitad::ImageView(pixels, 640, 480,
//                                                                 nexvitad::PixelFormat::bgr8));
//     std::cout << r.image_score << (r.is_anomalous ? " DEFECT\n" : " ok\n");   // r.map: 640x480
//
// Design:
// - Errors are exceptions: every failing C call throws nexvitad::Error carrying the C status
//   (nexvitad::Status) and the library's message. Using a closed or moved-from Model/Bank
//   throws Error with Status::invalid_argument; nothing here crashes on bad input.
// - Model and Bank own one C handle each and are movable, not copyable (like std::unique_ptr).
//   Why not shared by default: the C library already keeps a bank's model alive and makes
//   both handles immutable and thread-safe, so a C++ Bank need not hold a Model, and unique
//   ownership costs nothing and makes it plain when the (large) ONNX sessions are released.
//   To share one model among components or threads, hold it in a
//   std::shared_ptr<const nexvitad::Model>: every const member function may be called from any
//   number of threads at once (only close(), assignment and destruction must not race use).
// - Raw pixels go in through ImageView (pointer, width, height, row stride, pixel format),
//   maps come back in Result::map (std::vector<float>) or in a caller buffer (Span<float>).
// - With NEXVITAD_WITH_OPENCV defined before including this header (CMake: link
//   nexvitad::cpp_opencv), cv::Mat overloads exist: CV_8UC1 gray, CV_8UC3 BGR, CV_8UC4 BGRA,
//   any row step (ROIs work without a copy), maps returned as CV_32FC1. It is never
//   switched on implicitly, so a TU's API does not depend on which headers happen to exist.
// - Progress callbacks are std::function<bool(Stage, done, total)>; return false to cancel.
//   An exception thrown inside one is caught before it reaches the C library, the call is
//   cancelled, and the exception is rethrown to the caller once the C call has returned.
// - Inspection outputs (C ABI revision 3): score(..., ScoreOptions) decides at caller image
//   and pixel thresholds and returns the defect regions (Result::regions, highest peak
//   first); Result::threshold_flags says which thresholds were the caller's.
//   score_batch(..., ScoreOptions) (C ABI revision 5) applies them to every image of a batch
//   and counts each image's regions (Result::region_count).
// - Regions of interest (C ABI revision 4): a Mask (8-bit, any size, non-zero = inspect) given
//   to BankOptions::roi() becomes the bank's default ROI; ScoreOptions::roi() replaces it for
//   one call and ScoreOptions::ignore_bank_roi() switches it off; Result::roi_source says
//   which applied. Bank::roi() reads the bank's mask back, Bank::recalibrated(fpr) returns a
//   new bank with thresholds at another target false-positive rate.
// - Banks that grow (C ABI revision 5): a bank built with BankOptions::growable(true) keeps
//   its shots, so Bank::add(images) returns a new bank with more good images and
//   Bank::merge(other) a new bank from both banks' images; either equals, bit for bit, the
//   bank built from all the images at once.
// - Tiles per encoder call (C ABI revision 6): ModelOptions::tile_batch() sets how many tiles
//   of tiled images go through the encoders at once when scoring (0 = the provider's default);
//   ModelOptions::parallel_encoders(true) runs the two encoders side by side on two threads.
// - Training: nexvitad::train(base, data_root, sources, target, out_dir, TrainOptions, progress)
//   writes a new model folder; its progress callback gets loss terms and can cancel.
// - HALCON: see namespace nexvitad::halcon for HImage raw pointers.

#ifndef NEXVITAD_HPP
#define NEXVITAD_HPP

#include <nexvitad.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef NEXVITAD_WITH_OPENCV
#include <opencv2/core.hpp>
#endif

namespace nexvitad {

// ---------------------------------------------------------------------------------------------
// Status and errors

/// The C ABI's status codes (nexvitad_status), one per class of failure.
enum class Status : std::int32_t {
    ok = NEXVITAD_OK,
    invalid_argument = NEXVITAD_INVALID_ARGUMENT,
    io = NEXVITAD_IO,
    format = NEXVITAD_FORMAT,
    mismatch = NEXVITAD_MISMATCH,
    runtime = NEXVITAD_RUNTIME,
    unsupported = NEXVITAD_UNSUPPORTED,
    limit_exceeded = NEXVITAD_LIMIT_EXCEEDED,
    cancelled = NEXVITAD_CANCELLED,
    internal = NEXVITAD_INTERNAL,
};

/// The C name of a status, e.g. "NEXVITAD_MISMATCH".
inline const char* status_name(Status s) noexcept {
    return nexvitad_status_name(static_cast<int>(s));
}

/// Thrown by every call that fails. what() is "NEXVITAD_<STATUS>: <message>".
class Error : public std::runtime_error {
public:
    Error(Status status, const std::string& message)
        : std::runtime_error(std::string(status_name(status)) + ": " + message),
          status_(status),
          message_(message) {}

    /// Which class of failure (compare with Status::mismatch, Status::cancelled, ...).
    Status status() const noexcept { return status_; }
    /// The message alone, naming what was wrong (the parameter, the file, the limit).
    const std::string& message() const noexcept { return message_; }

private:
    Status status_;
    std::string message_;
};

namespace detail {

/// Turns a C status into an exception. The message is copied at once: the C library keeps
/// it only until the thread's next nexvitad call.
inline void check(nexvitad_status s) {
    if (s != NEXVITAD_OK) {
        throw Error(static_cast<Status>(s), nexvitad_last_error());
    }
}

[[noreturn]] inline void fail(Status s, const std::string& message) { throw Error(s, message); }

}  // namespace detail

/// Library version, e.g. "0.1.0".
inline const char* version() noexcept { return nexvitad_version(); }

/// The loaded library's C ABI version.
inline std::uint32_t abi_version() noexcept { return nexvitad_abi_version(); }

/// Throws Status::unsupported when the loaded library speaks another C ABI than the
/// nexvitad.h this binding was compiled with. Model's constructor calls it.
inline void check_abi() {
    if (nexvitad_abi_version() != NEXVITAD_ABI_VERSION) {
        detail::fail(Status::unsupported,
                     "libnexvitad has C ABI version " + std::to_string(nexvitad_abi_version()) +
                         " but this program was compiled against version " +
                         std::to_string(NEXVITAD_ABI_VERSION));
    }
}

// ---------------------------------------------------------------------------------------------
// Span: a non-owning view of contiguous elements (std::span is C++20; this is the subset used
// here). Converts from any container with data() and size(), from arrays, and - for spans of
// const elements - from braced lists, which then live until the end of the full expression.

template <class T>
class Span {
public:
    using element_type = T;
    using value_type = std::remove_cv_t<T>;
    using iterator = T*;

    constexpr Span() noexcept = default;
    constexpr Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}

    template <std::size_t N>
    constexpr Span(T (&array)[N]) noexcept : data_(array), size_(N) {}

    template <class C,
              class = std::enable_if_t<
                  !std::is_same_v<std::decay_t<C>, Span> &&
                  std::is_convertible_v<decltype(std::data(std::declval<C&>())), T*> &&
                  std::is_convertible_v<decltype(std::size(std::declval<C&>())), std::size_t>>>
    constexpr Span(C&& container) noexcept(noexcept(std::data(container)))
        : data_(std::data(container)), size_(std::size(container)) {}

    // As std::span gained in C++26 (P2447): the list's array lives until the end of the full
    // expression, which covers passing a braced list as an argument. GCC warns regardless.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
    template <class U = T, std::enable_if_t<std::is_const_v<U>, int> = 0>
    constexpr Span(std::initializer_list<value_type> list) noexcept
        : data_(list.begin()), size_(list.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    constexpr T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T* begin() const noexcept { return data_; }
    constexpr T* end() const noexcept { return data_ + size_; }
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Images

/// Pixel layouts, 8 bits per channel (nexvitad_pixel_format).
enum class PixelFormat : std::uint32_t {
    gray8 = NEXVITAD_PIXEL_GRAY8,
    rgb8 = NEXVITAD_PIXEL_RGB8,
    bgr8 = NEXVITAD_PIXEL_BGR8,    ///< OpenCV's channel order
    rgba8 = NEXVITAD_PIXEL_RGBA8,  ///< alpha ignored
    bgra8 = NEXVITAD_PIXEL_BGRA8,  ///< alpha ignored
};

/// Bytes per pixel of a format; 0 for a value that is not one.
constexpr std::size_t bytes_per_pixel(PixelFormat f) noexcept {
    switch (f) {
        case PixelFormat::gray8: return 1;
        case PixelFormat::rgb8:
        case PixelFormat::bgr8: return 3;
        case PixelFormat::rgba8:
        case PixelFormat::bgra8: return 4;
    }
    return 0;
}

/// A borrowed image: the caller keeps the pixels alive for the duration of each call only.
/// `stride` is the distance in bytes between the starts of two rows; 0 means tightly packed.
/// A default-constructed view is empty; scoring it throws Status::invalid_argument.
struct ImageView {
    const std::uint8_t* data = nullptr;
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::size_t stride = 0;
    PixelFormat format = PixelFormat::rgb8;

    constexpr ImageView() noexcept = default;
    ImageView(const void* pixels, std::uint32_t w, std::uint32_t h, PixelFormat f,
              std::size_t row_stride = 0) noexcept
        : data(static_cast<const std::uint8_t*>(pixels)), width(w), height(h),
          stride(row_stride), format(f) {}

    bool empty() const noexcept { return data == nullptr || width == 0 || height == 0; }
    std::size_t pixels() const noexcept { return std::size_t{width} * height; }

    /// The C struct the library reads.
    nexvitad_image c_image() const noexcept {
        nexvitad_image img{};
        img.data = data;
        img.width = width;
        img.height = height;
        img.stride = stride;
        img.format = static_cast<std::uint32_t>(format);
        return img;
    }
};

#ifdef NEXVITAD_WITH_OPENCV
/// A view of a cv::Mat without copying: CV_8UC1 is gray, CV_8UC3 BGR and CV_8UC4 BGRA unless
/// `format` says otherwise (e.g. PixelFormat::rgb8 for a Mat filled in RGB order). ROIs and
/// other non-contiguous Mats work: the row step becomes the stride. The Mat must outlive
/// the calls the view is passed to. Throws Status::invalid_argument for an empty Mat, a
/// Mat that is not 2-D, not 8-bit, or whose channel count does not fit the format.
inline ImageView view(const cv::Mat& mat, PixelFormat format) {
    if (mat.empty()) detail::fail(Status::invalid_argument, "image: the cv::Mat is empty");
    if (mat.dims != 2) {
        detail::fail(Status::invalid_argument,
                     "image: the cv::Mat has " + std::to_string(mat.dims) + " dimensions, not 2");
    }
    if (mat.depth() != CV_8U) {
        detail::fail(Status::invalid_argument,
                     "image: cv::Mat type " + cv::typeToString(mat.type()) +
                         " is not supported; use CV_8UC1, CV_8UC3 or CV_8UC4");
    }
    if (static_cast<std::size_t>(mat.channels()) != bytes_per_pixel(format)) {
        detail::fail(Status::invalid_argument,
                     "image: cv::Mat type " + cv::typeToString(mat.type()) + " has " +
                         std::to_string(mat.channels()) + " channels; the requested format needs " +
                         std::to_string(bytes_per_pixel(format)));
    }
    return ImageView(mat.data, static_cast<std::uint32_t>(mat.cols),
                     static_cast<std::uint32_t>(mat.rows), format, mat.step[0]);
}

/// As view(mat, format) with OpenCV's conventions: CV_8UC1 gray, CV_8UC3 BGR, CV_8UC4 BGRA.
inline ImageView view(const cv::Mat& mat) {
    PixelFormat f = PixelFormat::bgr8;
    if (mat.channels() == 1) f = PixelFormat::gray8;
    if (mat.channels() == 4) f = PixelFormat::bgra8;
    return view(mat, f);
}
#endif

// ---------------------------------------------------------------------------------------------
// Regions of interest (C ABI revision 4)

/// A borrowed region-of-interest mask (nexvitad_mask): one byte per pixel, non-zero = inspect,
/// 0 = ignore. Any size: the library scales it to each image (nearest neighbour), so one mask
/// drawn at the camera's resolution serves every image of that camera. `stride` is the
/// distance in bytes between the starts of two rows; 0 means `width`. Like ImageView it does
/// not own the bytes: they must stay alive (and unchanged) until the BankOptions or
/// ScoreOptions holding it has been used; the library copies what it keeps (a bank's default
/// ROI). A mask that selects no pixel, a null `data` or a 0 side is refused by the library
/// (Status::invalid_argument, naming "options->roi").
struct Mask {
    const std::uint8_t* data = nullptr;
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::size_t stride = 0;

    constexpr Mask() noexcept = default;
    Mask(const void* bytes, std::uint32_t w, std::uint32_t h, std::size_t row_stride = 0) noexcept
        : data(static_cast<const std::uint8_t*>(bytes)), width(w), height(h), stride(row_stride) {}

#ifdef NEXVITAD_WITH_OPENCV
    /// A view of a CV_8UC1 cv::Mat (any row step, so ROIs of a larger Mat work without a
    /// copy). The Mat must outlive the options the mask is given to. Throws
    /// Status::invalid_argument for an empty Mat, one that is not 2-D, or not CV_8UC1.
    explicit Mask(const cv::Mat& mat) {
        if (mat.empty()) detail::fail(Status::invalid_argument, "mask: the cv::Mat is empty");
        if (mat.dims != 2) {
            detail::fail(Status::invalid_argument,
                         "mask: the cv::Mat has " + std::to_string(mat.dims) + " dimensions, not 2");
        }
        if (mat.type() != CV_8UC1) {
            detail::fail(Status::invalid_argument, "mask: cv::Mat type " +
                                                       cv::typeToString(mat.type()) +
                                                       " is not supported; use CV_8UC1");
        }
        data = mat.data;
        width = static_cast<std::uint32_t>(mat.cols);
        height = static_cast<std::uint32_t>(mat.rows);
        stride = mat.step[0];
    }
#endif

    bool empty() const noexcept { return data == nullptr || width == 0 || height == 0; }

    /// The C struct the library reads.
    nexvitad_mask c_mask() const noexcept {
        nexvitad_mask m{};
        m.data = data;
        m.width = width;
        m.height = height;
        m.stride = stride;
        return m;
    }
};

/// A bank's own region of interest, read back by Bank::roi(): `width` x `height` bytes,
/// row-major, 1 = inspect and 0 = ignore (the library stores any non-zero byte as 1).
struct RoiMask {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::vector<std::uint8_t> data;

    /// A Mask borrowing `data` (e.g. to give another bank or a score call the same ROI).
    Mask view() const noexcept { return Mask(data.data(), width, height); }
};

/// Which region of interest a result was confined to (nexvitad_roi_source; C ABI revision 4).
enum class RoiSource : std::uint32_t {
    none = NEXVITAD_ROI_NONE,                ///< the whole image
    from_bank = NEXVITAD_ROI_FROM_BANK,      ///< the bank's default ROI (BankOptions::roi())
    from_caller = NEXVITAD_ROI_FROM_CALLER,  ///< ScoreOptions::roi()
};

namespace detail {

/// The nexvitad_mask a copied options object points at: `raw_roi` pointed at `from`'s own
/// mask (set by its roi() setter), so the copy points at its own; a pointer the caller set
/// through c_options() is kept as it is.
inline const nexvitad_mask* repoint_roi(const nexvitad_mask* raw_roi, const nexvitad_mask* from,
                                        const nexvitad_mask* to) noexcept {
    return raw_roi == from ? to : raw_roi;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Options, progress, results

/// The phase of a bank build reported to a progress callback (nexvitad_stage).
enum class Stage : std::uint32_t {
    encode = NEXVITAD_STAGE_ENCODE,        ///< total = number of images (of tiles, tiled banks)
    cluster = NEXVITAD_STAGE_CLUSTER,      ///< total = the k-means iteration cap
    calibrate = NEXVITAD_STAGE_CALIBRATE,  ///< total = number of images
};

/// Called on the calling thread after each step of a long call; return false to cancel it
/// (the call then throws Error with Status::cancelled). May throw: the exception cancels the
/// call and reaches the caller unchanged.
using ProgressFn = std::function<bool(Stage stage, std::size_t done, std::size_t total)>;

/// How patches are matched against the bank (nexvitad_scorer).
enum class Scorer : std::uint32_t {
    sinkhorn = NEXVITAD_SCORER_SINKHORN,
    full = NEXVITAD_SCORER_FULL,
    coreset = NEXVITAD_SCORER_CORESET,
};

/// How the image score is drawn from the map (nexvitad_image_score_mode).
enum class ImageScoreMode : std::uint32_t {
    max = NEXVITAD_IMAGE_SCORE_MAX,
    top_mean = NEXVITAD_IMAGE_SCORE_TOP_MEAN,
};

/// Where a tiled bank keeps its normal features (nexvitad_tile_layout; C ABI revision 3).
enum class TileLayout : std::uint32_t {
    /// One bank for the tiles of every position (textures, webs, surfaces); the default.
    shared = NEXVITAD_TILE_SHARED,
    /// One bank per tile position (aligned objects): scores only images of the one size it
    /// was built from (else Status::invalid_argument), and must be built from images of one size.
    per_position = NEXVITAD_TILE_PER_POSITION,
};

/// Bits of Result::threshold_flags (nexvitad_threshold_source; C ABI revision 3): which of a
/// result's thresholds came from the caller's ScoreOptions rather than the bank.
namespace threshold_source {
constexpr std::uint32_t bank = 0;
constexpr std::uint32_t image_from_caller = NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER;
constexpr std::uint32_t pixel_from_caller = NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER;
}  // namespace threshold_source

/// Bits for BankOptions::augment().
namespace augment {
constexpr std::uint32_t none = 0;
constexpr std::uint32_t hflip = NEXVITAD_AUGMENT_HFLIP;
constexpr std::uint32_t vflip = NEXVITAD_AUGMENT_VFLIP;
constexpr std::uint32_t rot90 = NEXVITAD_AUGMENT_ROT90;
}  // namespace augment

/// How to open a model. Starts from the library's defaults (nexvitad_options_default);
/// setters chain: ModelOptions().intra_threads(2).execution_provider("cpu").
class ModelOptions {
public:
    ModelOptions() {
        raw_.struct_size = sizeof raw_;
        detail::check(nexvitad_options_default(&raw_));
        if (raw_.ort_library) ort_library_ = raw_.ort_library;
        if (raw_.execution_provider) provider_ = raw_.execution_provider;
    }

    /// Path of libonnxruntime.so; empty = search (the default).
    ModelOptions& ort_library(std::string path) { ort_library_ = std::move(path); return *this; }
    /// "cpu" (empty = "cpu") or "cuda:N".
    ModelOptions& execution_provider(std::string ep) { provider_ = std::move(ep); return *this; }
    ModelOptions& intra_threads(std::uint32_t n) { raw_.intra_threads = n; return *this; }
    /// optimization_off (0, a real setting) .. 3 (all); optimization_default (the C rule's
    /// "negative means the default", -1 stored in the uint32_t) = 3.
    ModelOptions& optimization_level(std::uint32_t level) { raw_.optimization_level = level; return *this; }
    /// Graph optimisation off (nexvitad_options.optimization_level = 0).
    static constexpr std::uint32_t optimization_off = 0;
    /// The library's default level (a negative value, -1, in nexvitad_options.optimization_level).
    static constexpr std::uint32_t optimization_default = static_cast<std::uint32_t>(-1);
    /// Largest accepted image width or height; 0 = library default.
    ModelOptions& max_image_side(std::uint32_t side) { raw_.max_image_side = side; return *this; }
    /// Largest accepted width x height; 0 = library default.
    ModelOptions& max_image_pixels(std::uint64_t n) { raw_.max_image_pixels = n; return *this; }
    /// Tiles per encoder call when scoring tiled images (C ABI revision 6); 0 = the default for
    /// the execution provider (4 on the CPU, 16 on CUDA), at most 256 (above it the Model
    /// constructor throws Status::invalid_argument). Larger calls hold more memory and are not
    /// faster on the CPU; on a GPU they keep the device busy.
    ModelOptions& tile_batch(std::uint32_t n) { raw_.tile_batch = n; return *this; }
    /// Runs the two encoders (Hiera and DINOv2) side by side, each on its own thread, instead of
    /// one after the other (nexvitad_options.parallel_encoders = 1, C ABI revision 6); with
    /// intra_threads 0 each encoder then gets half the cores. Faster at batch 1 on CPUs with few
    /// cores; the scores are the same. Off by default.
    ModelOptions& parallel_encoders(bool on) { raw_.parallel_encoders = on ? 1u : 0u; return *this; }

    const std::string& ort_library() const noexcept { return ort_library_; }
    const std::string& execution_provider() const noexcept { return provider_; }
    std::uint32_t intra_threads() const noexcept { return raw_.intra_threads; }
    std::uint32_t optimization_level() const noexcept { return raw_.optimization_level; }
    std::uint32_t max_image_side() const noexcept { return raw_.max_image_side; }
    std::uint64_t max_image_pixels() const noexcept { return raw_.max_image_pixels; }
    std::uint32_t tile_batch() const noexcept { return raw_.tile_batch; }
    bool parallel_encoders() const noexcept { return raw_.parallel_encoders != 0; }

    /// The C struct; its string pointers point into this object and live as long as it does.
    nexvitad_options c_options() const noexcept {
        nexvitad_options o = raw_;
        o.ort_library = ort_library_.empty() ? nullptr : ort_library_.c_str();
        o.execution_provider = provider_.empty() ? nullptr : provider_.c_str();
        return o;
    }

private:
    nexvitad_options raw_{};
    std::string ort_library_;
    std::string provider_;
};

/// How to build a bank. Starts from the library's defaults (nexvitad_bank_options_default:
/// the method's Sinkhorn K-means, the model's K and sigma, image score = max, seed 0).
class BankOptions {
public:
    BankOptions() {
        raw_.struct_size = sizeof raw_;
        detail::check(nexvitad_bank_options_default(&raw_));
    }

    BankOptions& scorer(Scorer s) { raw_.scorer = static_cast<std::uint32_t>(s); return *this; }
    /// Prototypes for the Sinkhorn scorer; 0 = the model's default.
    BankOptions& k(std::uint32_t k) { raw_.k = k; return *this; }
    BankOptions& epsilon(float e) { raw_.epsilon = e; return *this; }
    BankOptions& max_iters(std::uint32_t n) { raw_.max_iters = n; return *this; }
    BankOptions& tol(float t) { raw_.tol = t; return *this; }
    BankOptions& coreset_ratio(float r) { raw_.coreset_ratio = r; return *this; }
    /// Gaussian smoothing sigma in pixels (0 = none); any negative value = the model's
    /// default; NaN is refused.
    BankOptions& sigma(float s) { raw_.sigma = s; return *this; }
    /// `top_fraction` is used by ImageScoreMode::top_mean only.
    BankOptions& image_score_mode(ImageScoreMode m, float top_fraction = 0.1f) {
        raw_.image_score_mode = static_cast<std::uint32_t>(m);
        raw_.image_score_top_fraction = top_fraction;
        return *this;
    }
    /// OR of nexvitad::augment bits.
    BankOptions& augment(std::uint32_t bits) { raw_.augment = bits; return *this; }
    /// 0 = the model's default.
    BankOptions& target_fpr(float fpr) { raw_.target_fpr = fpr; return *this; }
    BankOptions& batch_size(std::uint32_t n) { raw_.batch_size = n; return *this; }
    BankOptions& seed(std::uint64_t seed) { raw_.seed = seed; return *this; }
    BankOptions& max_vectors(std::uint64_t n) { raw_.max_vectors = n; return *this; }
    /// Tiling (C ABI revision 3): image pixels one encoder input covers along its width (the
    /// tile's height follows the encoder input's aspect ratio); 0 = off, the default (each
    /// image resized whole). E.g. 224 on a 224 model = native resolution. A tile larger than
    /// an image is refused (Status::invalid_argument).
    BankOptions& tile(std::uint32_t pixels) { raw_.tile = pixels; return *this; }
    /// Share of a tile that overlaps its neighbour, in [0, 1); 0 = none. Ignored without tiling.
    BankOptions& tile_overlap(float share) { raw_.tile_overlap = share; return *this; }
    /// One bank for all tiles (TileLayout::shared, the default) or one per tile position.
    /// Ignored without tiling.
    BankOptions& tile_layout(TileLayout layout) {
        raw_.tile_layout = static_cast<std::uint32_t>(layout);
        return *this;
    }

    /// Region of interest (C ABI revision 4): only patches with a pixel inside `mask` enter
    /// the bank, and the bank keeps a copy as the default ROI of every score call (saved with
    /// it). The mask's bytes are borrowed until build_bank() has returned.
    BankOptions& roi(const Mask& mask) noexcept {
        roi_ = mask.c_mask();
        raw_.roi = &roi_;
        return *this;
    }
    /// No region of interest (the default): the whole image.
    BankOptions& no_roi() noexcept {
        raw_.roi = nullptr;
        return *this;
    }
    /// Growable bank (C ABI revision 5): true keeps the shots' features in the bank (and its
    /// file), so Bank::add() and Bank::merge() can later give the bank built from all the
    /// images at once. Costs file size for the Sinkhorn and coreset scorers, nothing for
    /// Scorer::full. Tiled banks grow too (a TileLayout::per_position bank only with images
    /// of its one size). false (the default): a small bank that cannot grow.
    BankOptions& growable(bool on) noexcept {
        raw_.growable = on ? 1u : 0u;
        return *this;
    }

    std::uint32_t tile() const noexcept { return raw_.tile; }
    float tile_overlap() const noexcept { return raw_.tile_overlap; }
    TileLayout tile_layout() const noexcept { return static_cast<TileLayout>(raw_.tile_layout); }
    bool growable() const noexcept { return raw_.growable != 0; }
    /// The mask given to roi(), or none.
    std::optional<Mask> roi() const noexcept {
        if (!raw_.roi) return std::nullopt;
        return Mask(raw_.roi->data, raw_.roi->width, raw_.roi->height, raw_.roi->stride);
    }

    // Copies point at their own copy of the mask view (the C struct holds a pointer to it).
    BankOptions(const BankOptions& other) noexcept : raw_(other.raw_), roi_(other.roi_) {
        raw_.roi = detail::repoint_roi(raw_.roi, &other.roi_, &roi_);
    }
    BankOptions& operator=(const BankOptions& other) noexcept {
        if (this != &other) {
            raw_ = other.raw_;
            roi_ = other.roi_;
            raw_.roi = detail::repoint_roi(raw_.roi, &other.roi_, &roi_);
        }
        return *this;
    }
    ~BankOptions() = default;

    /// The C struct, for fields without a setter here.
    nexvitad_bank_options& c_options() noexcept { return raw_; }
    const nexvitad_bank_options& c_options() const noexcept { return raw_; }

private:
    nexvitad_bank_options raw_{};
    nexvitad_mask roi_{};  // what raw_.roi points at after roi()
};

/// Per-call scoring choices (nexvitad_score_options; C ABI revision 3), for the score
/// overloads that take one: decide at another image threshold, draw defect regions at
/// another pixel threshold, and find the defect regions (Result::regions). Starts from the
/// library's defaults (nexvitad_score_options_default: the bank's thresholds, every region);
/// setters chain: ScoreOptions().pixel_threshold(2.5f).min_region_area(20).
class ScoreOptions {
public:
    ScoreOptions() {
        raw_.struct_size = sizeof raw_;
        detail::check(nexvitad_score_options_default(&raw_));
    }

    /// Decide at this image threshold instead of the bank's: finite and >= 0 (0 is a real
    /// setting: every image with a positive score is anomalous). Any negative value means
    /// the bank's; NaN or +inf is refused by the library (Status::invalid_argument).
    ScoreOptions& image_threshold(float t) { raw_.image_threshold = t; return *this; }
    /// Draw the defect regions (map values strictly above it) at this pixel threshold
    /// instead of the bank's; the same rules as image_threshold().
    ScoreOptions& pixel_threshold(float t) { raw_.pixel_threshold = t; return *this; }
    /// Back to the bank's image threshold.
    ScoreOptions& bank_image_threshold() { raw_.image_threshold = -1.0f; return *this; }
    /// Back to the bank's pixel threshold.
    ScoreOptions& bank_pixel_threshold() { raw_.pixel_threshold = -1.0f; return *this; }
    /// Smallest region kept, in pixels; 0 (the default) keeps every region.
    ScoreOptions& min_region_area(std::uint64_t pixels) { raw_.min_region_area = pixels; return *this; }
    /// Find defect regions (on by default); off, Result::regions stays empty.
    ScoreOptions& regions(bool on) { regions_ = on; return *this; }
    /// Room for this many regions in the first call (default 64). A result with more scores
    /// the image a second time with room for all of them: the C ABI reports the count, like
    /// snprintf, and keeps nothing between calls. Results are the same either way.
    ScoreOptions& region_capacity(std::size_t n) { region_capacity_ = n; return *this; }
    /// Region of interest for this call (C ABI revision 4), replacing the bank's default: map
    /// pixels outside are 0, and the image score and regions come from inside
    /// (Result::roi_source is RoiSource::from_caller). Borrowed until the score call returns.
    ScoreOptions& roi(const Mask& mask) noexcept {
        roi_ = mask.c_mask();
        raw_.roi = &roi_;
        return *this;
    }
    /// Back to the bank's default ROI (or the whole image if it has none; the default).
    ScoreOptions& bank_roi() noexcept {
        raw_.roi = nullptr;
        raw_.ignore_bank_roi = 0;
        return *this;
    }
    /// true: score the whole image even if the bank has a default ROI (when no roi() is
    /// given; Result::roi_source is RoiSource::none). false (the default): use the bank's.
    ScoreOptions& ignore_bank_roi(bool on) noexcept {
        raw_.ignore_bank_roi = on ? 1u : 0u;
        return *this;
    }

    float image_threshold() const noexcept { return raw_.image_threshold; }
    float pixel_threshold() const noexcept { return raw_.pixel_threshold; }
    std::uint64_t min_region_area() const noexcept { return raw_.min_region_area; }
    bool regions() const noexcept { return regions_; }
    std::size_t region_capacity() const noexcept { return region_capacity_; }
    /// The mask given to roi(), or none (the bank's ROI applies, unless ignore_bank_roi()).
    std::optional<Mask> roi() const noexcept {
        if (!raw_.roi) return std::nullopt;
        return Mask(raw_.roi->data, raw_.roi->width, raw_.roi->height, raw_.roi->stride);
    }
    bool ignore_bank_roi() const noexcept { return raw_.ignore_bank_roi != 0; }

    // Copies point at their own copy of the mask view (the C struct holds a pointer to it).
    ScoreOptions(const ScoreOptions& other) noexcept
        : raw_(other.raw_), roi_(other.roi_), regions_(other.regions_),
          region_capacity_(other.region_capacity_) {
        raw_.roi = detail::repoint_roi(raw_.roi, &other.roi_, &roi_);
    }
    ScoreOptions& operator=(const ScoreOptions& other) noexcept {
        if (this != &other) {
            raw_ = other.raw_;
            roi_ = other.roi_;
            regions_ = other.regions_;
            region_capacity_ = other.region_capacity_;
            raw_.roi = detail::repoint_roi(raw_.roi, &other.roi_, &roi_);
        }
        return *this;
    }
    ~ScoreOptions() = default;

    /// The C struct, for fields without a setter here.
    nexvitad_score_options& c_options() noexcept { return raw_; }
    const nexvitad_score_options& c_options() const noexcept { return raw_; }

private:
    nexvitad_score_options raw_{};
    nexvitad_mask roi_{};  // what raw_.roi points at after roi()
    bool regions_ = true;
    std::size_t region_capacity_ = 64;
};

/// Where the seconds of one scoring went.
struct Timings {
    double prepare_s = 0, hiera_s = 0, dinov2_s = 0, head_s = 0, matching_s = 0,
           upsample_smooth_s = 0;
    double total_s() const noexcept {
        return prepare_s + hiera_s + dinov2_s + head_s + matching_s + upsample_smooth_s;
    }
};

/// One defect region (nexvitad_region; C ABI revision 3): an 8-connected piece of the map
/// strictly above the pixel threshold. Coordinates are image pixels.
struct Region {
    std::uint32_t x = 0, y = 0;           ///< bounding box: left and top edge
    std::uint32_t width = 0, height = 0;  ///< bounding box size
    std::uint64_t area = 0;               ///< pixels in the region
    float centroid_x = 0, centroid_y = 0; ///< pixel centres; the top-left pixel's is (0, 0)
    float peak = 0;                       ///< highest map value in the region
    float mean = 0;                       ///< mean map value over the region

    /// Converts the C struct.
    static Region from_c(const nexvitad_region& r) noexcept {
        Region out;
        out.x = r.x;
        out.y = r.y;
        out.width = r.width;
        out.height = r.height;
        out.area = r.area;
        out.centroid_x = r.centroid_x;
        out.centroid_y = r.centroid_y;
        out.peak = r.peak;
        out.mean = r.mean;
        return out;
    }
};

/// The outcome of scoring one image.
struct Result {
    float image_score = 0;      ///< the map's max (or top-fraction mean)
    float image_threshold = 0;  ///< the image threshold decided at (the bank's unless ScoreOptions set one)
    float pixel_threshold = 0;  ///< compare map values with it for a defect mask (the regions' threshold)
    bool is_anomalous = false;  ///< image_score > image_threshold
    std::uint32_t width = 0;    ///< of the map = of the image
    std::uint32_t height = 0;
    /// OR of nexvitad::threshold_source bits: which thresholds above were the caller's
    /// (ScoreOptions); 0 = both are the bank's.
    std::uint32_t threshold_flags = 0;
    /// Which region of interest the map, score and regions were confined to (C ABI
    /// revision 4): the bank's, the caller's (ScoreOptions::roi()) or none (whole image).
    RoiSource roi_source = RoiSource::none;
    Timings timings;
    /// Row-major width x height anomaly map; empty when it went to a caller buffer or was
    /// not asked for.
    std::vector<float> map;
    /// Defect regions, highest peak first, when scored with ScoreOptions (regions on);
    /// empty otherwise (and when the image has none).
    std::vector<Region> regions;
    /// How many defect regions the image has (of at least ScoreOptions::min_region_area()
    /// pixels), when scored with ScoreOptions: with regions on it equals regions.size(); from
    /// Model::score_batch with ScoreOptions (C ABI revision 5) it is the count alone, regions
    /// staying empty. 0 when scored without ScoreOptions, or with regions off.
    std::uint64_t region_count = 0;

    /// image_threshold came from ScoreOptions::image_threshold().
    bool image_threshold_from_caller() const noexcept {
        return (threshold_flags & threshold_source::image_from_caller) != 0;
    }
    /// pixel_threshold came from ScoreOptions::pixel_threshold().
    bool pixel_threshold_from_caller() const noexcept {
        return (threshold_flags & threshold_source::pixel_from_caller) != 0;
    }

    /// The map value at column x, row y (throws std::out_of_range when there is no map).
    float map_at(std::uint32_t x, std::uint32_t y) const {
        if (x >= width || y >= height) throw std::out_of_range("nexvitad::Result::map_at");
        return map.at(std::size_t{y} * width + x);
    }

    /// Converts the C struct (the map is not part of it).
    static Result from_c(const nexvitad_result& r) {
        Result out;
        out.image_score = r.image_score;
        out.image_threshold = r.image_threshold;
        out.pixel_threshold = r.pixel_threshold;
        out.is_anomalous = r.is_anomalous != 0;
        out.width = r.width;
        out.height = r.height;
        out.threshold_flags = r.threshold_flags;
        out.region_count = r.region_count;
        out.roi_source = static_cast<RoiSource>(r.roi_source);
        out.timings.prepare_s = r.prepare_s;
        out.timings.hiera_s = r.hiera_s;
        out.timings.dinov2_s = r.dinov2_s;
        out.timings.head_s = r.head_s;
        out.timings.matching_s = r.matching_s;
        out.timings.upsample_smooth_s = r.upsample_smooth_s;
        return out;
    }
};

#ifdef NEXVITAD_WITH_OPENCV
/// A CV_32FC1 copy of a result's map (empty Mat when the result has no map).
inline cv::Mat map_mat(const Result& r) {
    if (r.map.empty()) return cv::Mat();
    return cv::Mat(static_cast<int>(r.height), static_cast<int>(r.width), CV_32FC1,
                   const_cast<float*>(r.map.data()))
        .clone();
}
#endif

/// What a bank holds (nexvitad_bank_info).
struct BankInfo {
    Scorer scorer = Scorer::sinkhorn;
    std::uint32_t k = 0, dim = 0, grid_w = 0, grid_h = 0, shots = 0;
    std::uint64_t vectors = 0;
    float sigma = 0, image_threshold = 0, pixel_threshold = 0, target_fpr = 0;
    ImageScoreMode image_score_mode = ImageScoreMode::max;
    float image_score_top_fraction = 0;
    std::uint32_t augment = 0;
    bool converged = false;
    std::uint32_t iterations = 0;
    std::uint64_t seed = 0;
    /// Tiling (C ABI revision 3): tile width and height in image pixels; 0 = a whole-image
    /// bank (no tiling), see tiled().
    std::uint32_t tile = 0, tile_h = 0;
    float tile_overlap = 0;                    ///< 0 without tiling
    TileLayout tile_layout = TileLayout::shared;  ///< shared without tiling
    /// TileLayout::per_position only: tile columns and rows, and the one image size the bank
    /// scores; all 0 for other banks, which score any size.
    std::uint32_t tile_cols = 0, tile_rows = 0, image_width = 0, image_height = 0;
    /// Size of the bank's default region of interest (C ABI revision 4); 0 x 0 = none, see
    /// has_roi() and Bank::roi().
    std::uint32_t roi_width = 0, roi_height = 0;
    /// Built with BankOptions::growable(true) (C ABI revision 5): Bank::add() and
    /// Bank::merge() work on it.
    bool growable = false;

    /// Built with tiling (tile > 0).
    bool tiled() const noexcept { return tile != 0; }
    /// Built with a region of interest (BankOptions::roi()), which it applies by default.
    bool has_roi() const noexcept { return roi_width != 0 && roi_height != 0; }
};

/// Tag for Model::score: score without producing a map.
struct NoMap {};
constexpr NoMap no_map{};

namespace detail {

/// Carries a std::function through the C callback's `user` pointer, and any exception it
/// throws back out: exceptions must never unwind through the C library.
struct ProgressState {
    const ProgressFn* fn;
    std::exception_ptr error;
};

inline int progress_trampoline(void* user, int stage, std::size_t done,
                               std::size_t total) noexcept {
    auto* st = static_cast<ProgressState*>(user);
    if (st->error) return 1;
    try {
        return (*st->fn)(static_cast<Stage>(stage), done, total) ? 0 : 1;
    } catch (...) {
        st->error = std::current_exception();
        return 1;
    }
}

// The image limits nexvitad.h documents for options left at 0. Used only to refuse, before
// allocating a map, an image the library would refuse anyway (Status::limit_exceeded), so
// a bogus width x height cannot make this binding allocate gigabytes first.
constexpr std::uint64_t default_max_image_side = 16384;
constexpr std::uint64_t default_max_image_pixels = 64ull * 1024 * 1024;

/// One nexvitad_score_with_options call (`h` may be null: the bank's own model), with the
/// regions grown to fit: when the library counts more than the array holds, the image is
/// scored again with room for all (scoring is deterministic, so the count does not change).
inline Result score_with_options(nexvitad_model* h, nexvitad_bank* b, const ImageView& image,
                                 float* map, std::size_t map_len, const ScoreOptions& options) {
    const nexvitad_image c = image.c_image();
    nexvitad_result r{};
    r.struct_size = sizeof r;
    if (!options.regions()) {
        check(nexvitad_score_with_options(h, b, &c, &options.c_options(), map, map_len, nullptr, 0,
                                          nullptr, &r));
        return Result::from_c(r);
    }
    std::vector<nexvitad_region> buf(options.region_capacity());
    std::size_t count = 0;
    for (;;) {
        check(nexvitad_score_with_options(h, b, &c, &options.c_options(), map, map_len,
                                          buf.empty() ? nullptr : buf.data(), buf.size(), &count,
                                          &r));
        if (count <= buf.size()) break;
        buf.resize(count);
    }
    Result out = Result::from_c(r);
    out.regions.reserve(count);
    for (std::size_t i = 0; i < count; ++i) out.regions.push_back(Region::from_c(buf[i]));
    return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Bank

class Model;

/// A memory bank of normal features plus its thresholds. Owns a nexvitad_bank handle;
/// movable, not copyable. Immutable: const members may be used from many threads at once.
/// A bank keeps its model alive inside the library, so it may outlive the Model object.
class Bank {
public:
    /// An empty (closed) bank.
    Bank() noexcept = default;
    /// Takes ownership of a handle from the C API (nullptr gives an empty bank).
    explicit Bank(nexvitad_bank* handle) noexcept : h_(handle) {}

    Bank(const Bank&) = delete;
    Bank& operator=(const Bank&) = delete;
    Bank(Bank&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    Bank& operator=(Bank&& other) noexcept {
        if (this != &other) {
            reset();
            h_ = std::exchange(other.h_, nullptr);
        }
        return *this;
    }
    ~Bank() { reset(); }

    /// Saves atomically to `path` (a safetensors file).
    void save(const std::string& path) const {
        detail::check(nexvitad_bank_save(handle("save"), path.c_str()));
    }

    /// Scores one image with the model the bank was built or loaded with (nexvitad_score with
    /// a NULL model, C ABI revision 2): works after that Model was closed or destroyed. The map
    /// (image width x height) is returned in Result::map.
    Result score(const ImageView& image) const {
        nexvitad_bank* b = handle("score");
        std::vector<float> map(image.empty() ? 0 : image.pixels());
        Result r = score_c(b, image, map.data(), map.size());
        r.map = std::move(map);
        return r;
    }

    /// As score(image), without producing a map.
    Result score(const ImageView& image, NoMap) const {
        return score_c(handle("score"), image, nullptr, 0);
    }

    /// As score(image), with per-call thresholds and defect regions (nexvitad_score_with_options,
    /// C ABI revision 3): Result::regions, Result::threshold_flags.
    Result score(const ImageView& image, const ScoreOptions& options) const {
        nexvitad_bank* b = handle("score");
        std::vector<float> map(image.empty() ? 0 : image.pixels());
        Result r = detail::score_with_options(nullptr, b, image, map.data(), map.size(), options);
        r.map = std::move(map);
        return r;
    }

    /// As score(image, options), without producing a map.
    Result score(const ImageView& image, NoMap, const ScoreOptions& options) const {
        return detail::score_with_options(nullptr, handle("score"), image, nullptr, 0, options);
    }

    /// Scorer, sizes, sigma, thresholds and build settings.
    BankInfo info() const {
        nexvitad_bank_info c{};
        c.struct_size = sizeof c;
        detail::check(nexvitad_bank_get_info(handle("info"), &c));
        BankInfo i;
        i.scorer = static_cast<Scorer>(c.scorer);
        i.k = c.k;
        i.dim = c.dim;
        i.grid_w = c.grid_w;
        i.grid_h = c.grid_h;
        i.shots = c.shots;
        i.vectors = c.vectors;
        i.sigma = c.sigma;
        i.image_threshold = c.image_threshold;
        i.pixel_threshold = c.pixel_threshold;
        i.target_fpr = c.target_fpr;
        i.image_score_mode = static_cast<ImageScoreMode>(c.image_score_mode);
        i.image_score_top_fraction = c.image_score_top_fraction;
        i.augment = c.augment;
        i.converged = c.converged != 0;
        i.iterations = c.iterations;
        i.seed = c.seed;
        i.tile = c.tile;
        i.tile_h = c.tile_h;
        i.tile_overlap = c.tile_overlap;
        i.tile_layout = static_cast<TileLayout>(c.tile_layout);
        i.tile_cols = c.tile_cols;
        i.tile_rows = c.tile_rows;
        i.image_width = c.image_width;
        i.image_height = c.image_height;
        i.roi_width = c.roi_width;
        i.roi_height = c.roi_height;
        i.growable = c.growable != 0;
        return i;
    }

    /// The bank's default region of interest (C ABI revision 4; nexvitad_bank_get_roi), or
    /// none when it was built without one.
    std::optional<RoiMask> roi() const {
        nexvitad_bank* b = handle("roi");
        const BankInfo i = info();
        if (!i.has_roi()) return std::nullopt;
        RoiMask m;
        m.width = i.roi_width;
        m.height = i.roi_height;
        m.data.resize(std::size_t{i.roi_width} * i.roi_height);
        detail::check(nexvitad_bank_get_roi(b, m.data.data(), m.data.size()));
        return m;
    }

    /// A new bank whose thresholds aim at another false-positive rate (C ABI revision 4;
    /// nexvitad_bank_recalibrate): computed from the normal-image scores stored at build time,
    /// nothing re-encoded. Same model, vectors and ROI; this bank is unchanged (and may keep
    /// scoring on other threads meanwhile). Save the new bank to keep it. Throws
    /// Status::invalid_argument for `target_fpr` outside (0, 1) or NaN, or a bank saved before
    /// banks stored their pixel-score tail (rebuild it).
    Bank recalibrated(float target_fpr) const {
        nexvitad_bank* out = nullptr;
        const nexvitad_status s = nexvitad_bank_recalibrate(handle("recalibrated"), target_fpr, &out);
        Bank bank(out);  // owns whatever came back, also when we throw below
        detail::check(s);
        return bank;
    }

    /// A new bank: this one with more good images (C ABI revision 5; nexvitad_bank_add), fitted
    /// and calibrated again over all its images, so it equals bit for bit the bank
    /// Model::build_bank() makes from all of them at once with the same options. The new
    /// images get this bank's augmentation and region of interest, and are encoded with the
    /// bank's model (the Model object may be gone). This bank is unchanged (and may keep
    /// scoring on other threads meanwhile); save the new one to keep it. `progress` as for
    /// build_bank: encoding of the new images, then clustering and calibration over all.
    /// Throws Error: invalid_argument (no images, a bad image, a bank built without
    /// BankOptions::growable(true), an image of another size than a per-position tile bank's),
    /// limit_exceeded (more rows than max_vectors), cancelled, or whatever `progress` threw.
    Bank add(Span<const ImageView> images, const ProgressFn& progress = nullptr) const {
        nexvitad_bank* b = handle("add");
        std::vector<nexvitad_image> c;
        c.reserve(images.size());
        for (const ImageView& img : images) c.push_back(img.c_image());
        detail::ProgressState state{&progress, nullptr};
        nexvitad_bank* out = nullptr;
        const nexvitad_status s = nexvitad_bank_add(
            b, c.data(), c.size(), progress ? &detail::progress_trampoline : nullptr,
            progress ? &state : nullptr, &out);
        Bank bank(out);  // owns whatever came back, also when we throw below
        if (state.error) std::rethrow_exception(state.error);
        detail::check(s);
        return bank;
    }

#ifdef NEXVITAD_WITH_OPENCV
    /// add() over cv::Mats (CV_8UC1 gray, CV_8UC3 BGR, CV_8UC4 BGRA; ROIs fine).
    Bank add(Span<const cv::Mat> images, const ProgressFn& progress = nullptr) const {
        std::vector<ImageView> views;
        views.reserve(images.size());
        for (const cv::Mat& m : images) views.push_back(view(m));
        return add(views, progress);
    }
#endif

    /// A new bank from this bank's images followed by `other`'s (C ABI revision 5;
    /// nexvitad_bank_merge), fitted and calibrated again: bit for bit the bank
    /// Model::build_bank() makes from all of them at once. Both banks must be growable, come
    /// from the same model and agree on every setting that shapes a bank (scorer, k, sigma,
    /// image score, augmentation, seed, target FPR, Sinkhorn/coreset parameters, region of
    /// interest, feature grid, tiling); the new bank scores with this bank's model. Both banks
    /// are unchanged. `progress`: clustering and calibration. Throws Error: mismatch (other
    /// models, or the first differing setting, named in the message), invalid_argument (a bank
    /// that is not growable), limit_exceeded, cancelled, or whatever `progress` threw.
    Bank merge(const Bank& other, const ProgressFn& progress = nullptr) const {
        nexvitad_bank* a = handle("merge");
        nexvitad_bank* b = other.handle("merge");
        detail::ProgressState state{&progress, nullptr};
        nexvitad_bank* out = nullptr;
        const nexvitad_status s =
            nexvitad_bank_merge(a, b, progress ? &detail::progress_trampoline : nullptr,
                                progress ? &state : nullptr, &out);
        Bank bank(out);  // owns whatever came back, also when we throw below
        if (state.error) std::rethrow_exception(state.error);
        detail::check(s);
        return bank;
    }

    /// Releases the handle now; later use throws Status::invalid_argument. Closing twice is
    /// a no-op. Throws only if the library rejects the handle (it was freed behind our back).
    void close() {
        nexvitad_bank* h = std::exchange(h_, nullptr);
        detail::check(nexvitad_bank_free(h));
    }

    bool is_open() const noexcept { return h_ != nullptr; }
    explicit operator bool() const noexcept { return is_open(); }

    /// The C handle (still owned by this object), for calls this binding does not wrap.
    nexvitad_bank* get() const noexcept { return h_; }
    /// Gives up ownership: the caller must nexvitad_bank_free() the returned handle.
    nexvitad_bank* release() noexcept { return std::exchange(h_, nullptr); }

    /// The handle, or Status::invalid_argument naming the operation when closed/moved from.
    nexvitad_bank* handle(const char* operation) const {
        if (!h_) {
            detail::fail(Status::invalid_argument,
                         std::string("nexvitad::Bank::") + operation +
                             ": the bank is closed or was moved from");
        }
        return h_;
    }

private:
    void reset() noexcept { (void)nexvitad_bank_free(std::exchange(h_, nullptr)); }

    static Result score_c(nexvitad_bank* b, const ImageView& image, float* map, std::size_t map_len) {
        const nexvitad_image c = image.c_image();
        nexvitad_result r{};
        r.struct_size = sizeof r;
        detail::check(nexvitad_score(nullptr, b, &c, map, map_len, &r));
        return Result::from_c(r);
    }

    nexvitad_bank* h_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Model

/// An opened model folder (model.json, hiera.onnx, dinov2.onnx[, head.safetensors]). Owns a
/// nexvitad_model handle; movable, not copyable. Every const member function may be called
/// from any number of threads at once, with results identical to calling them one at a time.
class Model {
public:
    /// An empty (closed) model.
    Model() noexcept = default;

    /// Opens the model folder `dir`. Throws Error: io (missing folder or file), format (bad
    /// model.json or ONNX file), mismatch, runtime (ONNX Runtime not loadable), unsupported.
    explicit Model(const std::string& dir, const ModelOptions& options = ModelOptions()) {
        check_abi();
        const nexvitad_options c = options.c_options();
        detail::check(nexvitad_model_open(dir.c_str(), &c, &h_));
        max_side_ = options.max_image_side() ? options.max_image_side()
                                             : detail::default_max_image_side;
        max_pixels_ = options.max_image_pixels() ? options.max_image_pixels()
                                                 : detail::default_max_image_pixels;
    }

    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;
    Model(Model&& other) noexcept
        : h_(std::exchange(other.h_, nullptr)),
          max_side_(other.max_side_),
          max_pixels_(other.max_pixels_) {}
    Model& operator=(Model&& other) noexcept {
        if (this != &other) {
            reset();
            h_ = std::exchange(other.h_, nullptr);
            max_side_ = other.max_side_;
            max_pixels_ = other.max_pixels_;
        }
        return *this;
    }
    ~Model() { reset(); }

    /// 64 hex digits identifying encoders, fusion configuration and head; a bank records it.
    std::string fingerprint() const {
        const char* fp = nexvitad_model_fingerprint(handle("fingerprint"));
        if (!fp) detail::check(NEXVITAD_INVALID_ARGUMENT);
        return fp;
    }

    /// Builds a bank from normal (defect-free) images of any sizes and formats. `progress`
    /// may cancel (Status::cancelled) or throw (rethrown here after the C call returns).
    Bank build_bank(Span<const ImageView> images, const BankOptions& options = BankOptions(),
                    const ProgressFn& progress = nullptr) const {
        nexvitad_model* h = handle("build_bank");
        std::vector<nexvitad_image> c;
        c.reserve(images.size());
        for (const ImageView& img : images) c.push_back(img.c_image());
        detail::ProgressState state{&progress, nullptr};
        nexvitad_bank* out = nullptr;
        const nexvitad_status s = nexvitad_bank_build(
            h, c.data(), c.size(), &options.c_options(),
            progress ? &detail::progress_trampoline : nullptr, progress ? &state : nullptr, &out);
        Bank bank(out);  // owns whatever came back, also when we throw below
        if (state.error) std::rethrow_exception(state.error);
        detail::check(s);
        return bank;
    }

    /// Loads a bank saved by Bank::save. Throws Error: io, format, mismatch (built by another
    /// model), limit_exceeded.
    Bank load_bank(const std::string& path) const {
        nexvitad_bank* out = nullptr;
        detail::check(nexvitad_bank_load(handle("load_bank"), path.c_str(), &out));
        return Bank(out);
    }

    /// Scores one image; the map (image width x height) is returned in Result::map.
    Result score(const Bank& bank, const ImageView& image) const {
        nexvitad_model* h = handle("score");
        nexvitad_bank* b = bank.handle("score");
        std::vector<float> map;
        if (!image.empty()) {
            check_limits(image, "image");
            map.resize(image.pixels());
        }
        Result r = score_c(h, b, image, map.data(), map.size());
        r.map = std::move(map);
        return r;
    }

    /// Scores one image into a caller buffer of at least width x height floats (row-major);
    /// Result::map stays empty.
    Result score(const Bank& bank, const ImageView& image, Span<float> map_out) const {
        nexvitad_model* h = handle("score");
        nexvitad_bank* b = bank.handle("score");
        if (map_out.data() == nullptr) {
            detail::fail(Status::invalid_argument,
                         "map_out: the buffer is empty; pass nexvitad::no_map to score without "
                         "a map");
        }
        return score_c(h, b, image, map_out.data(), map_out.size());
    }

    /// Scores one image without producing a map (cheaper when only the decision is wanted).
    Result score(const Bank& bank, const ImageView& image, NoMap) const {
        return score_c(handle("score"), bank.handle("score"), image, nullptr, 0);
    }

    /// Scores one image with per-call thresholds and defect regions (nexvitad_score_with_options,
    /// C ABI revision 3). The map is returned in Result::map; the regions (highest peak
    /// first) in Result::regions; Result::threshold_flags says which thresholds were the
    /// caller's. With default ScoreOptions the map, score and decision equal score(bank, image).
    Result score(const Bank& bank, const ImageView& image, const ScoreOptions& options) const {
        nexvitad_model* h = handle("score");
        nexvitad_bank* b = bank.handle("score");
        std::vector<float> map;
        if (!image.empty()) {
            check_limits(image, "image");
            map.resize(image.pixels());
        }
        Result r = detail::score_with_options(h, b, image, map.data(), map.size(), options);
        r.map = std::move(map);
        return r;
    }

    /// As score(bank, image, options), the map into a caller buffer of at least width x height
    /// floats; Result::map stays empty.
    Result score(const Bank& bank, const ImageView& image, Span<float> map_out,
                 const ScoreOptions& options) const {
        nexvitad_model* h = handle("score");
        nexvitad_bank* b = bank.handle("score");
        if (map_out.data() == nullptr) {
            detail::fail(Status::invalid_argument,
                         "map_out: the buffer is empty; pass nexvitad::no_map to score without "
                         "a map");
        }
        return detail::score_with_options(h, b, image, map_out.data(), map_out.size(), options);
    }

    /// As score(bank, image, options), without producing a map.
    Result score(const Bank& bank, const ImageView& image, NoMap, const ScoreOptions& options) const {
        return detail::score_with_options(handle("score"), bank.handle("score"), image, nullptr, 0,
                                          options);
    }

    /// Scores several images in one call (the encoders batch them). All succeed or it throws;
    /// an empty list gives an empty vector.
    std::vector<Result> score_batch(const Bank& bank, Span<const ImageView> images,
                                    bool with_maps = true) const {
        return score_batch_c(bank, images, nullptr, with_maps);
    }

    /// As score_batch(bank, images, with_maps), with per-call options applied to every image
    /// (nexvitad_score_batch_with_options, C ABI revision 5): the thresholds, the region of
    /// interest (ScoreOptions::roi(), ignore_bank_roi()) and min_region_area(). Each result's
    /// region_count counts that image's defect regions; the regions themselves are not
    /// returned (Result::regions stays empty, and ScoreOptions::regions() and
    /// region_capacity() do not apply): score one image with score(bank, image, options) for
    /// them. Result::threshold_flags and roi_source say which settings were the caller's.
    /// A NaN or infinite threshold throws Status::invalid_argument before anything is scored.
    std::vector<Result> score_batch(const Bank& bank, Span<const ImageView> images,
                                    const ScoreOptions& options, bool with_maps = true) const {
        return score_batch_c(bank, images, &options.c_options(), with_maps);
    }

#ifdef NEXVITAD_WITH_OPENCV
    /// build_bank over cv::Mats (CV_8UC1 gray, CV_8UC3 BGR, CV_8UC4 BGRA; ROIs fine).
    Bank build_bank(Span<const cv::Mat> images, const BankOptions& options = BankOptions(),
                    const ProgressFn& progress = nullptr) const {
        std::vector<ImageView> views;
        views.reserve(images.size());
        for (const cv::Mat& m : images) views.push_back(view(m));
        return build_bank(views, options, progress);
    }

    /// Scores a cv::Mat; the map is written to `map` as CV_32FC1 of the image's size
    /// (reallocated unless it already is one; a non-continuous `map` is filled row by row).
    Result score(const Bank& bank, const cv::Mat& image, cv::Mat& map) const {
        const ImageView v = view(image);
        check_limits(v, "image");
        map.create(image.rows, image.cols, CV_32FC1);
        if (map.isContinuous()) {
            return score(bank, v, Span<float>(map.ptr<float>(), map.total()));
        }
        cv::Mat tmp(image.rows, image.cols, CV_32FC1);
        Result r = score(bank, v, Span<float>(tmp.ptr<float>(), tmp.total()));
        tmp.copyTo(map);
        return r;
    }

    /// Scores a cv::Mat; the map is returned in Result::map (see also map_mat()).
    Result score(const Bank& bank, const cv::Mat& image) const { return score(bank, view(image)); }

    /// Scores a cv::Mat without producing a map.
    Result score(const Bank& bank, const cv::Mat& image, NoMap) const {
        return score(bank, view(image), no_map);
    }

    /// Scores a cv::Mat with per-call thresholds and defect regions; the map is returned in
    /// Result::map, the regions in Result::regions.
    Result score(const Bank& bank, const cv::Mat& image, const ScoreOptions& options) const {
        return score(bank, view(image), options);
    }
#endif

    /// Releases the handle now (banks keep what they need); later use throws
    /// Status::invalid_argument. Closing twice is a no-op.
    void close() {
        nexvitad_model* h = std::exchange(h_, nullptr);
        detail::check(nexvitad_model_free(h));
    }

    bool is_open() const noexcept { return h_ != nullptr; }
    explicit operator bool() const noexcept { return is_open(); }

    /// The C handle (still owned by this object), for calls this binding does not wrap.
    nexvitad_model* get() const noexcept { return h_; }
    /// Gives up ownership: the caller must nexvitad_model_free() the returned handle.
    nexvitad_model* release() noexcept { return std::exchange(h_, nullptr); }

    /// The handle, or Status::invalid_argument naming the operation when closed/moved from.
    nexvitad_model* handle(const char* operation) const {
        if (!h_) {
            detail::fail(Status::invalid_argument,
                         std::string("nexvitad::Model::") + operation +
                             ": the model is closed or was moved from");
        }
        return h_;
    }

private:
    void reset() noexcept { (void)nexvitad_model_free(std::exchange(h_, nullptr)); }

    void check_limits(const ImageView& img, const char* what) const {
        if (img.width > max_side_ || img.height > max_side_ || img.pixels() > max_pixels_) {
            detail::fail(Status::limit_exceeded,
                         std::string(what) + ": " + std::to_string(img.width) + "x" +
                             std::to_string(img.height) + " is above the model's limits (side " +
                             std::to_string(max_side_) + ", " + std::to_string(max_pixels_) +
                             " pixels)");
        }
    }

    static Result score_c(nexvitad_model* h, nexvitad_bank* b, const ImageView& image,
                          float* map, std::size_t map_len) {
        const nexvitad_image c = image.c_image();
        nexvitad_result r{};
        r.struct_size = sizeof r;
        detail::check(nexvitad_score(h, b, &c, map, map_len, &r));
        return Result::from_c(r);
    }

    /// Both score_batch overloads: nexvitad_score_batch when `options` is null, else
    /// nexvitad_score_batch_with_options.
    std::vector<Result> score_batch_c(const Bank& bank, Span<const ImageView> images,
                                      const nexvitad_score_options* options,
                                      bool with_maps) const {
        nexvitad_model* h = handle("score_batch");
        nexvitad_bank* b = bank.handle("score_batch");
        const std::size_t n = images.size();
        if (n == 0) return {};
        std::vector<nexvitad_image> c;
        c.reserve(n);
        std::vector<std::vector<float>> maps(with_maps ? n : 0);
        std::vector<float*> map_ptrs(maps.size(), nullptr);
        std::vector<std::size_t> map_lens(maps.size(), 0);
        for (std::size_t i = 0; i < n; ++i) {
            c.push_back(images[i].c_image());
            if (with_maps && !images[i].empty()) {
                check_limits(images[i], ("images[" + std::to_string(i) + "]").c_str());
                maps[i].resize(images[i].pixels());
                map_ptrs[i] = maps[i].data();
                map_lens[i] = maps[i].size();
            }
        }
        std::vector<nexvitad_result> cr(n);
        cr[0].struct_size = sizeof(nexvitad_result);
        float* const* mp = with_maps ? map_ptrs.data() : nullptr;
        const std::size_t* ml = with_maps ? map_lens.data() : nullptr;
        detail::check(options ? nexvitad_score_batch_with_options(h, b, c.data(), n, options, mp, ml,
                                                                  cr.data())
                              : nexvitad_score_batch(h, b, c.data(), n, mp, ml, cr.data()));
        std::vector<Result> out;
        out.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            out.push_back(Result::from_c(cr[i]));
            if (with_maps) out.back().map = std::move(maps[i]);
        }
        return out;
    }

    nexvitad_model* h_ = nullptr;
    std::uint64_t max_side_ = detail::default_max_image_side;
    std::uint64_t max_pixels_ = detail::default_max_image_pixels;
};

// ---------------------------------------------------------------------------------------------
// Training (C ABI revision 1)

/// Phases reported to a training progress callback (nexvitad_train_phase).
enum class TrainPhase : std::uint32_t {
    encode = NEXVITAD_TRAIN_ENCODE,  ///< done/total = images encoded (once each)
    step = NEXVITAD_TRAIN_STEP,      ///< done/total = steps of the whole run
};

/// The loss terms of a step (or a mean over steps) and the pseudo-label coverage.
struct TrainLosses {
    double loss = 0;      ///< L = L_src + λ1·L_pl + λ2·L_cons
    double src = 0;       ///< supervised source loss (BCE + Dice)
    double pl = 0;        ///< pseudo-label loss
    double cons = 0;      ///< consistency loss
    double coverage = 0;  ///< share of target cells whose pseudo label passed θ, in [0, 1]
};

/// One progress report of nexvitad::train (nexvitad_train_progress).
struct TrainProgress {
    TrainPhase phase = TrainPhase::encode;
    std::uint64_t done = 0, total = 0;
    std::uint32_t epoch = 0;  ///< from 0 (0 while encoding)
    std::uint32_t epochs = 0, step = 0, steps_per_epoch = 0;
    TrainLosses losses;      ///< this step's (zero while encoding)
    TrainLosses epoch_mean;  ///< running mean over this epoch's steps
};

/// Called on the calling thread after each encoded image and each step; return false to
/// cancel (train then throws Error with Status::cancelled, leaving a checkpoint after the
/// first step). May throw: the exception cancels the run and reaches the caller unchanged.
using TrainProgressFn = std::function<bool(const TrainProgress&)>;

/// How to train. Starts from the library's defaults (nexvitad_train_options_default: 4 epochs,
/// batch 8, lr 1e-3, θ/λ1/λ2 from the model, seed 0, a checkpoint every 20 steps).
class TrainOptions {
public:
    TrainOptions() {
        raw_.struct_size = sizeof raw_;
        detail::check(nexvitad_train_options_default(&raw_));
    }

    TrainOptions& epochs(std::uint32_t n) { raw_.epochs = n; return *this; }
    TrainOptions& batch(std::uint32_t n) { raw_.batch = n; return *this; }
    TrainOptions& lr(double v) { raw_.lr = v; return *this; }
    TrainOptions& weight_decay(double v) { raw_.weight_decay = v; return *this; }
    /// Pseudo-label confidence threshold in (0, 1); 0 = the model's default.
    TrainOptions& theta(double v) { raw_.theta = v; return *this; }
    /// Pseudo-label loss weight >= 0; -1 = the model's default.
    TrainOptions& lambda1(double v) { raw_.lambda1 = v; return *this; }
    /// Consistency loss weight >= 0; -1 = the model's default.
    TrainOptions& lambda2(double v) { raw_.lambda2 = v; return *this; }
    TrainOptions& seed(std::uint64_t v) { raw_.seed = v; return *this; }
    TrainOptions& decoder_width(std::uint32_t n) { raw_.decoder_width = n; return *this; }
    /// Steps between checkpoints; 0 = only when cancelled and at the end.
    TrainOptions& checkpoint_every(std::uint32_t n) { raw_.checkpoint_every = n; return *this; }
    TrainOptions& copies(std::uint32_t n) { raw_.copies = n; return *this; }
    TrainOptions& flips(bool on) { raw_.flips = on ? 1 : 0; return *this; }
    TrainOptions& noise_std(double v) { raw_.noise_std = v; return *this; }
    TrainOptions& jitter(double v) { raw_.jitter = v; return *this; }
    /// Continue the run whose checkpoint is in the output folder (same data and options).
    TrainOptions& resume(bool on) { raw_.resume = on ? 1 : 0; return *this; }
    /// Also train on the target's test images, unlabeled.
    TrainOptions& target_test(bool on) { raw_.target_test = on ? 1 : 0; return *this; }
    /// Folder of the feature cache (features.nxcache: every training image's encoder outputs,
    /// written once, reused by a resume); "" = the output folder. A folder shared by runs on
    /// the same data encodes the images once; a cache there of other data is refused
    /// (Status::mismatch) and left alone. C ABI revision 7.
    TrainOptions& cache_dir(std::string dir) { cache_dir_ = std::move(dir); return *this; }
    const std::string& cache_dir() const noexcept { return cache_dir_; }
    /// Bytes of feature sets held in memory; the others are read from the cache file at each
    /// step. 0 = the default (1/8 of RAM, at most 512 MiB). Below one step's feature sets the
    /// call throws Status::invalid_argument naming the least. C ABI revision 7.
    TrainOptions& cache_mem(std::uint64_t bytes) { raw_.cache_mem = bytes; return *this; }

    /// The C struct, for fields without a setter here. Its `cache_dir` stays NULL: train()
    /// points it at cache_dir() for the call, so a copied TrainOptions never dangles.
    nexvitad_train_options& c_options() noexcept { return raw_; }
    const nexvitad_train_options& c_options() const noexcept { return raw_; }

private:
    nexvitad_train_options raw_{};
    std::string cache_dir_;
};

/// The summary of a finished run (nexvitad_train_result).
struct TrainResult {
    std::uint64_t steps = 0;      ///< of the whole run
    std::uint64_t steps_run = 0;  ///< in this call (fewer after a resume)
    std::uint32_t epochs = 0, steps_per_epoch = 0, source_images = 0, target_images = 0;
    TrainLosses last_epoch;  ///< mean loss terms of the last epoch
    double encode_s = 0, train_s = 0;
    std::uint64_t cache_bytes = 0;  ///< size of the feature cache file (revision 7)
    std::uint64_t encoded = 0;      ///< feature sets this call encoded
    std::uint64_t reused = 0;       ///< feature sets this call found in the cache
};

namespace detail {

struct TrainProgressState {
    const TrainProgressFn* fn;
    std::exception_ptr error;
};

inline TrainLosses losses(double loss, double src, double pl, double cons, double coverage) {
    TrainLosses l;
    l.loss = loss;
    l.src = src;
    l.pl = pl;
    l.cons = cons;
    l.coverage = coverage;
    return l;
}

inline int train_trampoline(void* user, const nexvitad_train_progress* p) noexcept {
    auto* st = static_cast<TrainProgressState*>(user);
    if (st->error) return 1;
    try {
        TrainProgress t;
        t.phase = static_cast<TrainPhase>(p->phase);
        t.done = p->done;
        t.total = p->total;
        t.epoch = p->epoch;
        t.epochs = p->epochs;
        t.step = p->step;
        t.steps_per_epoch = p->steps_per_epoch;
        t.losses = losses(p->loss, p->l_src, p->l_pl, p->l_cons, p->coverage);
        t.epoch_mean = losses(p->mean_loss, p->mean_l_src, p->mean_l_pl, p->mean_l_cons,
                              p->mean_coverage);
        return (*st->fn)(t) ? 0 : 1;
    } catch (...) {
        st->error = std::current_exception();
        return 1;
    }
}

}  // namespace detail

/// Trains `base`'s fusion head on the labelled `sources` and the unlabeled `target` domain of
/// the MVTec-layout dataset `data_root` and writes a new model folder `out_dir` (open it with
/// nexvitad::Model; build its banks with it). `out_dir` must be new or empty unless
/// options.resume(true) continues a cancelled run there, to the same result as an unbroken
/// run. Throws Error: invalid_argument (bad domains or options, e.g. θ outside (0, 1)), io,
/// format, mismatch (resume with other options or data), cancelled (progress returned false),
/// or whatever `progress` threw. May run on any thread, also next to scoring with `base`.
inline TrainResult train(const Model& base, const std::string& data_root,
                         const std::vector<std::string>& sources, const std::string& target,
                         const std::string& out_dir, const TrainOptions& options = TrainOptions(),
                         const TrainProgressFn& progress = nullptr) {
    nexvitad_model* h = base.handle("train");
    std::vector<const char*> names;
    names.reserve(sources.size());
    for (const std::string& s : sources) names.push_back(s.c_str());
    detail::TrainProgressState state{&progress, nullptr};
    nexvitad_train_result r{};
    r.struct_size = sizeof r;
    nexvitad_train_options o = options.c_options();
    o.cache_dir = options.cache_dir().empty() ? nullptr : options.cache_dir().c_str();
    const nexvitad_status s = nexvitad_train(
        h, data_root.c_str(), names.empty() ? nullptr : names.data(), names.size(), target.c_str(),
        out_dir.c_str(), &o, progress ? &detail::train_trampoline : nullptr,
        progress ? &state : nullptr, &r);
    if (state.error) std::rethrow_exception(state.error);
    detail::check(s);
    TrainResult out;
    out.steps = r.steps;
    out.steps_run = r.steps_run;
    out.epochs = r.epochs;
    out.steps_per_epoch = r.steps_per_epoch;
    out.source_images = r.source_images;
    out.target_images = r.target_images;
    out.last_epoch = detail::losses(r.loss, r.l_src, r.l_pl, r.l_cons, r.coverage);
    out.encode_s = r.encode_s;
    out.train_s = r.train_s;
    out.cache_bytes = r.cache_bytes;
    out.encoded = r.encoded;
    out.reused = r.reused;
    return out;
}

// ---------------------------------------------------------------------------------------------
// Logging

/// Log levels (nexvitad_log_level).
enum class LogLevel : std::uint32_t { info = NEXVITAD_LOG_INFO, warn = NEXVITAD_LOG_WARN };

/// Receives the library's log lines, on whichever thread logs (so it must be thread-safe).
/// `message` is valid during the call only. Exceptions it throws are swallowed.
using LogFn = std::function<void(LogLevel level, const char* message)>;

namespace detail {

inline void log_trampoline(void* user, int level, const char* message) noexcept {
    try {
        (*static_cast<const LogFn*>(user))(static_cast<LogLevel>(level), message);
    } catch (...) {
        // Nowhere to report it: a log sink failing must not fail the logged operation.
    }
}

struct LogSlot {
    std::mutex mutex;
    LogFn* current = nullptr;  // deliberately leaked at exit: library threads may still log
};

inline LogSlot& log_slot() {
    static LogSlot* slot = new LogSlot();
    return *slot;
}

}  // namespace detail

/// Sets the process-wide log callback, or removes it when `fn` is empty. Without one the
/// library writes nothing. Must not be called from inside the callback (throws
/// Status::invalid_argument then).
inline void set_log_callback(LogFn fn) {
    std::unique_ptr<LogFn> next(fn ? new LogFn(std::move(fn)) : nullptr);
    detail::LogSlot& slot = detail::log_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    detail::check(nexvitad_set_log_callback(next ? &detail::log_trampoline : nullptr, next.get()));
    // The C call guarantees no thread still runs the previous callback: free it now.
    std::unique_ptr<LogFn> previous(slot.current);
    slot.current = next.release();
}

// ---------------------------------------------------------------------------------------------
// HALCON
//
// HALCON images are planar and unpadded: get_image_pointer1 gives one pointer to width x height
// bytes (a "byte" image), get_image_pointer3 three such pointers (red, green, blue). A
// one-channel image can be viewed in place; a three-channel one must be interleaved into a
// temporary RGB buffer first, since the C API takes interleaved pixels only. HALCON is not
// needed to compile these helpers: they take the raw pointers and sizes. With HALCON/C++:
//
//     #include "HalconCpp.h"
//     #include <nexvitad.hpp>
//
//     nexvitad::Result score_himage(const nexvitad::Model& model, const nexvitad::Bank& bank,
//                                   const HalconCpp::HImage& image) {
//         HalconCpp::HString type;
//         Hlong width = 0, height = 0;
//         if (image.CountChannels().I() == 1) {
//             void* p = image.GetImagePointer1(&type, &width, &height);
//             return model.score(bank, nexvitad::halcon::gray_view(p, type.Text(), width, height));
//         }
//         void *r = nullptr, *g = nullptr, *b = nullptr;
//         image.GetImagePointer3(&r, &g, &b, &type, &width, &height);
//         std::vector<std::uint8_t> rgb;   // reuse it across images to avoid reallocating
//         return model.score(bank, nexvitad::halcon::interleave_rgb(r, g, b, type.Text(),
//                                                                   width, height, rgb));
//     }
//
// Convert other pixel types first (convert_image_type(Image, &Byte, "byte"), or
// scale_image_max). The returned views borrow the HImage (or `rgb`): keep it alive meanwhile.

namespace halcon {

namespace detail {

inline void check_byte_image(const char* type, std::int64_t width, std::int64_t height) {
    if (type == nullptr || std::strcmp(type, "byte") != 0) {
        nexvitad::detail::fail(
            Status::invalid_argument,
            std::string("HALCON image type '") + (type ? type : "(null)") +
                "' is not supported; convert it with convert_image_type(..., 'byte')");
    }
    constexpr std::int64_t max = std::numeric_limits<std::uint32_t>::max();
    if (width <= 0 || height <= 0 || width > max || height > max) {
        nexvitad::detail::fail(Status::invalid_argument,
                               "HALCON image size " + std::to_string(width) + "x" +
                                   std::to_string(height) + " is out of range");
    }
}

}  // namespace detail

/// A view of a one-channel "byte" HImage from get_image_pointer1 (no copy).
inline ImageView gray_view(const void* pointer, const char* type, std::int64_t width,
                           std::int64_t height) {
    detail::check_byte_image(type, width, height);
    if (pointer == nullptr) {
        nexvitad::detail::fail(Status::invalid_argument, "HALCON image pointer is null");
    }
    return ImageView(pointer, static_cast<std::uint32_t>(width),
                     static_cast<std::uint32_t>(height), PixelFormat::gray8);
}

/// Interleaves the three planes of a "byte" HImage from get_image_pointer3 into `buffer`
/// (resized to width x height x 3) and returns an RGB view of it.
inline ImageView interleave_rgb(const void* red, const void* green, const void* blue,
                                const char* type, std::int64_t width, std::int64_t height,
                                std::vector<std::uint8_t>& buffer) {
    detail::check_byte_image(type, width, height);
    if (red == nullptr || green == nullptr || blue == nullptr) {
        nexvitad::detail::fail(Status::invalid_argument, "HALCON channel pointer is null");
    }
    const std::size_t w = static_cast<std::size_t>(width);
    const std::size_t h = static_cast<std::size_t>(height);
    if (w > std::numeric_limits<std::size_t>::max() / 3 / h) {
        nexvitad::detail::fail(Status::invalid_argument, "HALCON image is too large");
    }
    const std::size_t n = w * h;
    buffer.resize(n * 3);
    const auto* r = static_cast<const std::uint8_t*>(red);
    const auto* g = static_cast<const std::uint8_t*>(green);
    const auto* b = static_cast<const std::uint8_t*>(blue);
    std::uint8_t* out = buffer.data();
    for (std::size_t i = 0; i < n; ++i) {
        out[3 * i] = r[i];
        out[3 * i + 1] = g[i];
        out[3 * i + 2] = b[i];
    }
    return ImageView(buffer.data(), static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(h),
                     PixelFormat::rgb8);
}

}  // namespace halcon

}  // namespace nexvitad

#endif  // NEXVITAD_HPP
