// The cv::Mat overloads (NEXVITAD_WITH_OPENCV): formats, ROIs, map output, bad Mats.
#include "support.hpp"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cstring>
#include <functional>
#include <vector>

using nexvitad::Status;
using support::status_of;
using support::bits;
using support::expected;

namespace {

/// The fixture as an OpenCV BGR image (a contiguous copy).
cv::Mat fixture_bgr() {
    const cv::Mat rgb(static_cast<int>(expected().height), static_cast<int>(expected().width), CV_8UC3,
                      const_cast<std::uint8_t*>(support::fixture_rgb().data()));
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    return bgr;
}

/// Bitwise equality of two CV_32FC1 maps (any steps).
bool same_bits(const cv::Mat& a, const cv::Mat& b) {
    if (a.type() != CV_32FC1 || b.type() != CV_32FC1 || a.size() != b.size()) return false;
    for (int y = 0; y < a.rows; ++y)
        if (std::memcmp(a.ptr(y), b.ptr(y), static_cast<std::size_t>(a.cols) * sizeof(float)) != 0) return false;
    return true;
}

std::string map_sha(const cv::Mat& map) {
    const cv::Mat c = map.isContinuous() ? map : map.clone();
    return support::sha256_hex(c.ptr<float>(), c.total());
}

}  // namespace

TEST(OpenCV, BgrMatReproducesTheFixture) {
    cv::Mat map;
    const nexvitad::Result r = support::model().score(support::fixture_bank(), fixture_bgr(), map);
    EXPECT_EQ(map.type(), CV_32FC1);
    EXPECT_EQ(map.cols, static_cast<int>(expected().width));
    EXPECT_EQ(map.rows, static_cast<int>(expected().height));
    EXPECT_TRUE(r.map.empty());  // the map went to the Mat
    EXPECT_EQ(bits(r.image_score), expected().image_score_bits);
    EXPECT_EQ(r.is_anomalous, expected().is_anomalous);
    EXPECT_EQ(map_sha(map), expected().map_sha256);
}

TEST(OpenCV, RoiScoresBitIdenticalToContiguousCopy) {
    const cv::Mat bgr = fixture_bgr();
    // Embed the image in a larger noisy canvas, then view it back as a ROI.
    cv::Mat canvas(bgr.rows + 31, bgr.cols + 45, CV_8UC3);
    cv::randu(canvas, cv::Scalar::all(0), cv::Scalar::all(255));
    const cv::Rect where(17, 9, bgr.cols, bgr.rows);
    bgr.copyTo(canvas(where));
    const cv::Mat roi = canvas(where);
    ASSERT_FALSE(roi.isContinuous());
    const cv::Mat copy = roi.clone();
    ASSERT_TRUE(copy.isContinuous());

    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    cv::Mat map_roi, map_copy;
    const nexvitad::Result r_roi = m.score(b, roi, map_roi);
    const nexvitad::Result r_copy = m.score(b, copy, map_copy);
    EXPECT_EQ(bits(r_roi.image_score), bits(r_copy.image_score));
    EXPECT_TRUE(same_bits(map_roi, map_copy));
    EXPECT_EQ(bits(r_roi.image_score), expected().image_score_bits);

    // The same through the vector-returning overload.
    const nexvitad::Result v_roi = m.score(b, roi);
    EXPECT_TRUE(same_bits(nexvitad::map_mat(v_roi), map_copy));
}

TEST(OpenCV, GrayAndBgraScoreLikeTheirBgrEquivalents) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    const cv::Mat bgr = fixture_bgr();

    cv::Mat bgra;
    cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
    cv::Mat alpha(bgra.size(), CV_8UC1);
    cv::randu(alpha, 0, 255);  // alpha is ignored
    cv::insertChannel(alpha, bgra, 3);
    cv::Mat map_bgr, map_bgra;
    m.score(b, bgr, map_bgr);
    m.score(b, bgra, map_bgra);
    EXPECT_TRUE(same_bits(map_bgr, map_bgra));

    cv::Mat gray, gray3;
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(gray, gray3, cv::COLOR_GRAY2BGR);
    cv::Mat map_gray, map_gray3;
    m.score(b, gray, map_gray);
    m.score(b, gray3, map_gray3);
    EXPECT_TRUE(same_bits(map_gray, map_gray3));
    EXPECT_FALSE(same_bits(map_gray, map_bgr));  // a different image gives a different map
}

TEST(OpenCV, ExplicitRgbFormatForRgbOrderedMats) {
    const cv::Mat rgb(static_cast<int>(expected().height), static_cast<int>(expected().width), CV_8UC3,
                      const_cast<std::uint8_t*>(support::fixture_rgb().data()));
    const nexvitad::Result r = support::model().score(
        support::fixture_bank(), nexvitad::view(rgb, nexvitad::PixelFormat::rgb8));
    EXPECT_EQ(bits(r.image_score), expected().image_score_bits);
    // Read as BGR (the default), the same bytes are another image.
    EXPECT_NE(support::sha256_hex(r.map.data(), r.map.size()),
              map_sha(nexvitad::map_mat(support::model().score(support::fixture_bank(), rgb))));
}

TEST(OpenCV, MapIsWrittenIntoAnExistingRoi) {
    const cv::Mat bgr = fixture_bgr();
    cv::Mat big(bgr.rows + 4, bgr.cols + 6, CV_32FC1, cv::Scalar(-5.0f));
    cv::Mat into = big(cv::Rect(3, 2, bgr.cols, bgr.rows));
    const uchar* before = into.data;
    support::model().score(support::fixture_bank(), bgr, into);
    EXPECT_EQ(into.data, before);  // filled in place, not reallocated
    EXPECT_EQ(map_sha(into), expected().map_sha256);
    EXPECT_EQ(big.at<float>(0, 0), -5.0f);  // outside the ROI: untouched
    EXPECT_EQ(big.at<float>(big.rows - 1, big.cols - 1), -5.0f);

    cv::Mat wrong(2, 2, CV_8UC1);  // wrong size and type: reallocated
    support::model().score(support::fixture_bank(), bgr, wrong);
    EXPECT_EQ(wrong.type(), CV_32FC1);
    EXPECT_EQ(wrong.size(), bgr.size());
}

TEST(OpenCV, BadMatsAreInvalidArgument) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    cv::Mat map;
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat(), map); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat()); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat(), nexvitad::no_map); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat(8, 8, CV_16UC1, cv::Scalar(0))); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat(8, 8, CV_32FC3, cv::Scalar(0))); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat(8, 8, CV_8UC2, cv::Scalar(0))); }), Status::invalid_argument);
    const int sizes[3] = {4, 4, 4};
    EXPECT_EQ(status_of([&] { m.score(b, cv::Mat(3, sizes, CV_8UC1, cv::Scalar(0))); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { nexvitad::view(cv::Mat(8, 8, CV_8UC3), nexvitad::PixelFormat::gray8); }),
              Status::invalid_argument);
    EXPECT_EQ(status_of([&] { m.build_bank(std::vector<cv::Mat>{cv::Mat()}); }), Status::invalid_argument);
    EXPECT_TRUE(map.empty());  // nothing written on failure
    try {
        m.score(b, cv::Mat(8, 8, CV_16UC1, cv::Scalar(0)));
    } catch (const nexvitad::Error& e) {
        EXPECT_NE(e.message().find("CV_16UC1"), std::string::npos) << e.message();
    }
}

TEST(OpenCV, BuildBankFromMatsEqualsBuildFromViews) {
    const auto& m = support::model();
    const cv::Mat bgr = fixture_bgr();
    cv::Mat flipped, gray;
    cv::flip(bgr, flipped, 1);
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
    cv::Mat canvas(bgr.rows + 10, bgr.cols + 10, CV_8UC3, cv::Scalar(0, 0, 0));
    flipped.copyTo(canvas(cv::Rect(5, 5, bgr.cols, bgr.rows)));
    const std::vector<cv::Mat> mats = {bgr, canvas(cv::Rect(5, 5, bgr.cols, bgr.rows)), gray};

    const nexvitad::Bank from_mats = m.build_bank(mats, support::quick_bank_options());
    const nexvitad::Bank from_views = m.build_bank(
        {nexvitad::ImageView(bgr.data, static_cast<std::uint32_t>(bgr.cols), static_cast<std::uint32_t>(bgr.rows),
                             nexvitad::PixelFormat::bgr8),
         nexvitad::view(flipped), nexvitad::view(gray)},
        support::quick_bank_options());
    EXPECT_EQ(from_mats.info().shots, 3u);
    cv::Mat a, c;
    const auto ra = m.score(from_mats, bgr, a);
    const auto rc = m.score(from_views, bgr, c);
    EXPECT_EQ(bits(ra.image_threshold), bits(rc.image_threshold));
    EXPECT_TRUE(same_bits(a, c));
}

TEST(OpenCV, MaskFromMatReproducesTheRoiFixture) {
    const auto& want = support::expected_roi();
    const cv::Mat packed(static_cast<int>(want.roi_height), static_cast<int>(want.roi_width), CV_8UC1,
                         const_cast<std::uint8_t*>(support::roi_mask_bytes().data()));
    // The mask as a ROI of a larger Mat (a row step above its width), scaled to 255s.
    cv::Mat canvas(packed.rows + 7, packed.cols + 11, CV_8UC1, cv::Scalar(0));
    cv::Mat inner = canvas(cv::Rect(5, 3, packed.cols, packed.rows));
    packed.convertTo(inner, CV_8UC1, 255.0);
    const nexvitad::Mask mask(inner);
    EXPECT_EQ(mask.width, want.roi_width);
    EXPECT_EQ(mask.height, want.roi_height);
    EXPECT_EQ(mask.stride, canvas.step[0]);
    const nexvitad::Result r = support::model().score(support::fixture_bank(), fixture_bgr(),
                                                      nexvitad::ScoreOptions().roi(mask));
    EXPECT_EQ(r.roi_source, nexvitad::RoiSource::from_caller);
    EXPECT_EQ(bits(r.image_score), want.caller_roi_image_score_bits);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), want.caller_roi_map_sha256);

    // A bank built with the Mat mask keeps it (as 1s).
    const nexvitad::Bank bank = support::model().build_bank(
        std::vector<cv::Mat>{fixture_bgr()}, support::quick_bank_options().k(8).roi(nexvitad::Mask(packed)));
    ASSERT_TRUE(bank.roi().has_value());
    EXPECT_EQ(bank.roi()->data, support::roi_mask_bytes());
}

TEST(OpenCV, BadMaskMatsAreInvalidArgument) {
    EXPECT_EQ(status_of([] { nexvitad::Mask m{cv::Mat()}; (void)m; }), Status::invalid_argument);
    EXPECT_EQ(status_of([] { nexvitad::Mask m{cv::Mat(4, 4, CV_8UC3, cv::Scalar::all(1))}; (void)m; }),
              Status::invalid_argument);
    EXPECT_EQ(status_of([] { nexvitad::Mask m{cv::Mat(4, 4, CV_32FC1, cv::Scalar(1))}; (void)m; }),
              Status::invalid_argument);
    const int dims[3] = {2, 2, 2};
    EXPECT_EQ(status_of([&] { nexvitad::Mask m{cv::Mat(3, dims, CV_8UC1, cv::Scalar(1))}; (void)m; }),
              Status::invalid_argument);
}

TEST(OpenCV, AddMatsEqualsAddViewsAndTheBuild) {
    const auto& m = support::model();
    const cv::Mat bgr = fixture_bgr();
    cv::Mat flipped, gray;
    cv::flip(bgr, flipped, 1);
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
    // The gray image as a ROI of a larger Mat: a row step above its width.
    cv::Mat canvas(gray.rows + 6, gray.cols + 9, CV_8UC1, cv::Scalar(0));
    gray.copyTo(canvas(cv::Rect(4, 2, gray.cols, gray.rows)));
    const cv::Mat gray_roi = canvas(cv::Rect(4, 2, gray.cols, gray.rows));
    const auto options = support::quick_bank_options().k(8).growable(true);

    const nexvitad::Bank two = m.build_bank(std::vector<cv::Mat>{bgr, flipped}, options);
    const nexvitad::Bank from_mats = two.add(std::vector<cv::Mat>{gray_roi});
    const nexvitad::Bank from_views = two.add({nexvitad::view(gray)});
    const nexvitad::Bank built = m.build_bank(std::vector<cv::Mat>{bgr, flipped, gray}, options);
    EXPECT_EQ(from_mats.info().shots, 3u);
    EXPECT_TRUE(from_mats.info().growable);
    for (const nexvitad::Bank* b : {&from_views, &built}) {
        EXPECT_EQ(bits(from_mats.info().image_threshold), bits(b->info().image_threshold));
        EXPECT_EQ(bits(from_mats.info().pixel_threshold), bits(b->info().pixel_threshold));
        cv::Mat a, c;
        const auto ra = m.score(from_mats, bgr, a);
        const auto rc = m.score(*b, bgr, c);
        EXPECT_EQ(bits(ra.image_score), bits(rc.image_score));
        EXPECT_TRUE(same_bits(a, c));
    }
    // A bad Mat is refused before the library is called.
    EXPECT_EQ(status_of([&] { (void)two.add(std::vector<cv::Mat>{cv::Mat()}); }), Status::invalid_argument);
}
