// Regions of interest and recalibration (C ABI revision 4): Mask, BankOptions::roi(),
// ScoreOptions::roi()/ignore_bank_roi(), Result::roi_source, BankInfo::roi_width/roi_height,
// Bank::roi(), Bank::recalibrated(), and the cross-language fixture expected_roi.json to the
// last bit.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using nexvitad::ImageView;
using nexvitad::Mask;
using nexvitad::PixelFormat;
using nexvitad::Result;
using nexvitad::RoiSource;
using nexvitad::ScoreOptions;
using nexvitad::Status;
using support::bits;
using support::expected;
using support::expected_roi;

namespace {

const nexvitad::Bank& roi_bank() {
    static const nexvitad::Bank b = support::model().load_bank((support::crosslang_dir() / "roi.bank").string());
    return b;
}

/// roi.mask as a Mask (24 x 18, packed).
Mask fixture_mask() {
    return Mask(support::roi_mask_bytes().data(), expected_roi().roi_width, expected_roi().roi_height);
}

/// Runs `f`, expects nexvitad::Error with `status` and `needle` in its message.
void expect_error(Status status, const std::string& needle, const std::function<void()>& f) {
    try {
        f();
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), status) << e.what();
        EXPECT_NE(e.message().find(needle), std::string::npos) << e.what();
        return;
    }
    ADD_FAILURE() << "no nexvitad::Error (" << nexvitad::status_name(status) << ") was thrown; wanted \"" << needle
                  << "\"";
}

void expect_plain(const Result& r, const char* what) {
    SCOPED_TRACE(what);
    const support::Expected& want = expected_roi().plain;
    EXPECT_EQ(r.roi_source, RoiSource::from_bank);
    EXPECT_EQ(bits(r.image_score), want.image_score_bits);
    EXPECT_EQ(bits(r.image_threshold), want.image_threshold_bits);
    EXPECT_EQ(r.is_anomalous, want.is_anomalous);
    EXPECT_EQ(r.width, want.width);
    EXPECT_EQ(r.height, want.height);
    ASSERT_EQ(r.map.size(), want.map_len);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), want.map_sha256);
}

/// Three normal 96x72 images: the fixture image and its two mirrors.
struct GoodImages {
    std::vector<std::uint8_t> h = support::hflip(support::fixture_rgb(), expected().width, expected().height, 3);
    std::vector<std::uint8_t> v = support::vflip(support::fixture_rgb(), expected().width, expected().height, 3);
    std::vector<ImageView> views() const {
        return {support::fixture_view(),
                ImageView(h.data(), expected().width, expected().height, PixelFormat::rgb8),
                ImageView(v.data(), expected().width, expected().height, PixelFormat::rgb8)};
    }
};

}  // namespace

TEST(Roi, OptionsDefaultToNoneAndReachTheCStruct) {
    ASSERT_GE(nexvitad_abi_revision(), 4u);
    const nexvitad::BankOptions bd;
    EXPECT_FALSE(bd.roi().has_value());
    EXPECT_EQ(bd.c_options().roi, nullptr);
    const ScoreOptions sd;
    EXPECT_FALSE(sd.roi().has_value());
    EXPECT_FALSE(sd.ignore_bank_roi());
    EXPECT_EQ(sd.c_options().roi, nullptr);
    EXPECT_EQ(sd.c_options().ignore_bank_roi, 0u);
    EXPECT_EQ(sd.c_options().reserved0, 0u);

    const std::uint8_t bytes[6] = {1, 0, 1, 1, 0, 1};
    const nexvitad::BankOptions b = nexvitad::BankOptions().roi(Mask(bytes, 2, 2, 3));
    ASSERT_NE(b.c_options().roi, nullptr);
    EXPECT_EQ(b.c_options().roi->data, bytes);
    EXPECT_EQ(b.c_options().roi->width, 2u);
    EXPECT_EQ(b.c_options().roi->height, 2u);
    EXPECT_EQ(b.c_options().roi->stride, 3u);
    ASSERT_TRUE(b.roi().has_value());
    EXPECT_EQ(b.roi()->stride, 3u);

    // A copy points at its own mask view, which outlives the original.
    const nexvitad::BankOptions* original = new nexvitad::BankOptions(b);
    nexvitad::BankOptions copy = *original;
    delete original;
    ASSERT_NE(copy.c_options().roi, nullptr);
    EXPECT_EQ(copy.c_options().roi->data, bytes);
    EXPECT_EQ(copy.c_options().roi->width, 2u);
    EXPECT_FALSE(nexvitad::BankOptions(copy).no_roi().roi().has_value());

    ScoreOptions s = ScoreOptions().roi(Mask(bytes, 3, 2)).ignore_bank_roi(true);
    ScoreOptions s2;
    s2 = s;
    ASSERT_NE(s2.c_options().roi, nullptr);
    EXPECT_NE(s2.c_options().roi, s.c_options().roi);
    EXPECT_EQ(s2.c_options().roi->width, 3u);
    EXPECT_TRUE(s2.ignore_bank_roi());
    EXPECT_EQ(s2.c_options().ignore_bank_roi, 1u);
    s2.bank_roi();
    EXPECT_FALSE(s2.roi().has_value());
    EXPECT_FALSE(s2.ignore_bank_roi());

    EXPECT_EQ(static_cast<std::uint32_t>(RoiSource::none), 0u);
    EXPECT_EQ(static_cast<std::uint32_t>(RoiSource::from_bank), 1u);
    EXPECT_EQ(static_cast<std::uint32_t>(RoiSource::from_caller), 2u);
}

TEST(Roi, FixtureBitExact) {
    const auto& m = support::model();
    const auto& want = expected_roi();
    const auto view = support::fixture_view();

    // roi.bank keeps roi.mask as its default ROI.
    const nexvitad::BankInfo info = roi_bank().info();
    EXPECT_TRUE(info.has_roi());
    EXPECT_EQ(info.roi_width, want.roi_width);
    EXPECT_EQ(info.roi_height, want.roi_height);
    const auto roi = roi_bank().roi();
    ASSERT_TRUE(roi.has_value());
    EXPECT_EQ(roi->width, want.roi_width);
    EXPECT_EQ(roi->height, want.roi_height);
    EXPECT_EQ(roi->data, support::roi_mask_bytes());

    // Default options: the bank's own ROI.
    expect_plain(m.score(roi_bank(), view), "Model::score");
    expect_plain(roi_bank().score(view), "Bank::score");
    expect_plain(m.score(roi_bank(), view, ScoreOptions()), "Model::score, default ScoreOptions");
    expect_plain(roi_bank().score(view, ScoreOptions().regions(false)), "Bank::score, ScoreOptions without regions");
    std::vector<float> buf(view.pixels());
    const Result into = m.score(roi_bank(), view, buf, ScoreOptions());
    EXPECT_EQ(into.roi_source, RoiSource::from_bank);
    EXPECT_EQ(support::sha256_hex(buf.data(), buf.size()), want.plain.map_sha256);
    const std::vector<Result> batch = m.score_batch(roi_bank(), {view, view});
    ASSERT_EQ(batch.size(), 2u);
    expect_plain(batch[1], "Model::score_batch");

    // tiny.bank (no ROI) with roi.mask given per call.
    EXPECT_FALSE(support::fixture_bank().info().has_roi());
    EXPECT_FALSE(support::fixture_bank().roi().has_value());
    const Result caller = m.score(support::fixture_bank(), view, ScoreOptions().roi(fixture_mask()));
    EXPECT_EQ(caller.roi_source, RoiSource::from_caller);
    EXPECT_EQ(bits(caller.image_score), want.caller_roi_image_score_bits);
    EXPECT_EQ(support::sha256_hex(caller.map.data(), caller.map.size()), want.caller_roi_map_sha256);
    // The same mask with padded rows: the same bits.
    const std::size_t stride = want.roi_width + 5;
    std::vector<std::uint8_t> padded(stride * want.roi_height, 0);
    for (std::size_t y = 0; y < want.roi_height; ++y)
        std::memcpy(&padded[y * stride], &support::roi_mask_bytes()[y * want.roi_width], want.roi_width);
    const Result strided = support::fixture_bank().score(
        view, ScoreOptions().roi(Mask(padded.data(), want.roi_width, want.roi_height, stride)));
    EXPECT_EQ(strided.roi_source, RoiSource::from_caller);
    EXPECT_EQ(support::sha256_hex(strided.map.data(), strided.map.size()), want.caller_roi_map_sha256);
    // tiny.bank without a ROI at all.
    EXPECT_EQ(m.score(support::fixture_bank(), view).roi_source, RoiSource::none);
    // The caller's ROI for every image of a batch (nexvitad_score_batch_with_options, revision 5),
    // from a copy of the options (which points at its own copy of the mask view).
    const ScoreOptions with_roi = ScoreOptions().roi(fixture_mask());
    const ScoreOptions copied = with_roi;
    for (const Result& r : m.score_batch(support::fixture_bank(), {view, view}, copied)) {
        EXPECT_EQ(r.roi_source, RoiSource::from_caller);
        EXPECT_EQ(bits(r.image_score), want.caller_roi_image_score_bits);
        EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), want.caller_roi_map_sha256);
    }

    // roi.bank with its ROI switched off.
    const Result off = m.score(roi_bank(), view, ScoreOptions().ignore_bank_roi(true));
    EXPECT_EQ(off.roi_source, RoiSource::none);
    EXPECT_EQ(bits(off.image_score), want.ignore_roi_image_score_bits);
    EXPECT_EQ(support::sha256_hex(off.map.data(), off.map.size()), want.ignore_roi_map_sha256);

    // Saved again and loaded back: the ROI and the bits stay.
    support::TempDir dir;
    const std::string copy = (dir.path() / "roi-copy.bank").string();
    roi_bank().save(copy);
    const nexvitad::Bank loaded = m.load_bank(copy);
    EXPECT_EQ(loaded.roi()->data, support::roi_mask_bytes());
    expect_plain(loaded.score(view), "saved and loaded");
}

TEST(Roi, BuildWithRoiKeepsItAsTheDefault) {
    const auto& m = support::model();
    GoodImages good;
    // A 4 x 3 mask with the right column ignored, given as 255s: the bank stores 1s.
    const std::uint8_t bytes[12] = {255, 255, 255, 0, 255, 255, 255, 0, 7, 255, 255, 0};
    const nexvitad::Bank bank = m.build_bank(good.views(), support::quick_bank_options().k(8).roi(Mask(bytes, 4, 3)));
    const nexvitad::BankInfo info = bank.info();
    EXPECT_TRUE(info.has_roi());
    EXPECT_EQ(info.roi_width, 4u);
    EXPECT_EQ(info.roi_height, 3u);
    const auto roi = bank.roi();
    ASSERT_TRUE(roi.has_value());
    EXPECT_EQ(roi->data, (std::vector<std::uint8_t>{1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0}));

    const Result r = m.score(bank, support::fixture_view());
    EXPECT_EQ(r.roi_source, RoiSource::from_bank);
    EXPECT_EQ(bank.score(support::fixture_view(), ScoreOptions()).roi_source, RoiSource::from_bank);
    // The right quarter of the image (mask column 3) is outside: its map pixels are 0.
    EXPECT_EQ(r.map_at(expected().width - 1, 0), 0.0f);
    EXPECT_EQ(r.map_at(expected().width - 1, expected().height - 1), 0.0f);
    EXPECT_GT(r.map_at(0, 0), 0.0f);
    // The bank's own mask read back and given per call to the same bank: the same map.
    const Result again = bank.score(support::fixture_view(), ScoreOptions().roi(roi->view()));
    EXPECT_EQ(again.roi_source, RoiSource::from_caller);
    EXPECT_EQ(support::sha256_hex(again.map.data(), again.map.size()), support::sha256_hex(r.map.data(), r.map.size()));
    // A bank built without one reports none.
    const nexvitad::Bank plain = m.build_bank(good.views(), support::quick_bank_options().k(8));
    EXPECT_FALSE(plain.info().has_roi());
    EXPECT_EQ(plain.info().roi_width + plain.info().roi_height, 0u);
    EXPECT_FALSE(plain.roi().has_value());
}

TEST(Roi, BadMasksThrow) {
    const auto& m = support::model();
    GoodImages good;
    const std::vector<std::uint8_t> zeros(24 * 18, 0);
    expect_error(Status::invalid_argument, "options->roi", [&] {
        m.build_bank(good.views(), support::quick_bank_options().roi(Mask(zeros.data(), 24, 18)));
    });
    expect_error(Status::invalid_argument, "is all zero", [&] {
        m.build_bank(good.views(), support::quick_bank_options().roi(Mask(zeros.data(), 24, 18)));
    });
    expect_error(Status::invalid_argument, "options->roi", [&] {
        m.score(support::fixture_bank(), support::fixture_view(), ScoreOptions().roi(Mask(zeros.data(), 24, 18)));
    });
    expect_error(Status::invalid_argument, "is all zero", [&] {
        roi_bank().score(support::fixture_view(), nexvitad::no_map, ScoreOptions().roi(Mask(zeros.data(), 24, 18)));
    });
    expect_error(Status::invalid_argument, "options->roi->data is NULL",
                 [&] { roi_bank().score(support::fixture_view(), ScoreOptions().roi(Mask())); });
    const std::uint8_t one[4] = {1, 1, 1, 1};
    expect_error(Status::invalid_argument, "options->roi",
                 [&] { roi_bank().score(support::fixture_view(), ScoreOptions().roi(Mask(one, 0, 2))); });
    expect_error(Status::invalid_argument, "stride", [&] {
        roi_bank().score(support::fixture_view(), ScoreOptions().roi(Mask(one, 2, 2, 1)));
    });
    ScoreOptions bad_flag;
    bad_flag.c_options().ignore_bank_roi = 2;
    expect_error(Status::invalid_argument, "ignore_bank_roi",
                 [&] { roi_bank().score(support::fixture_view(), bad_flag); });
    // Nothing was spoiled: the fixture still scores to the bit.
    expect_plain(roi_bank().score(support::fixture_view()), "after the errors");
}

TEST(Roi, RecalibratedIsANewBankAtAnotherFpr) {
    const auto& m = support::model();
    GoodImages good;
    const nexvitad::Bank built = m.build_bank(good.views(), support::quick_bank_options().k(8));
    for (const nexvitad::Bank* b : {&built, &roi_bank()}) {
        const nexvitad::BankInfo before = b->info();
        const nexvitad::Bank strict = b->recalibrated(0.001f);
        ASSERT_TRUE(strict.is_open());
        EXPECT_NE(strict.get(), b->get());
        const nexvitad::BankInfo si = strict.info();
        EXPECT_EQ(si.target_fpr, 0.001f);
        EXPECT_GE(si.image_threshold, before.image_threshold);
        EXPECT_GE(si.pixel_threshold, before.pixel_threshold);
        EXPECT_EQ(si.vectors, before.vectors);
        EXPECT_EQ(si.roi_width, before.roi_width);
        EXPECT_EQ(si.roi_height, before.roi_height);
        // The original is unchanged.
        const nexvitad::BankInfo after = b->info();
        EXPECT_EQ(bits(after.image_threshold), bits(before.image_threshold));
        EXPECT_EQ(bits(after.pixel_threshold), bits(before.pixel_threshold));
        EXPECT_EQ(bits(after.target_fpr), bits(before.target_fpr));
        // The new bank decides at its own threshold, with the same map.
        const Result r0 = m.score(*b, support::fixture_view());
        const Result r1 = m.score(strict, support::fixture_view());
        EXPECT_EQ(bits(r1.image_threshold), bits(si.image_threshold));
        EXPECT_EQ(bits(r1.image_score), bits(r0.image_score));
        EXPECT_EQ(r1.roi_source, r0.roi_source);
        EXPECT_EQ(support::sha256_hex(r1.map.data(), r1.map.size()), support::sha256_hex(r0.map.data(), r0.map.size()));
        // Recalibrating back to the bank's own FPR gives its thresholds again.
        EXPECT_EQ(bits(strict.recalibrated(before.target_fpr).info().image_threshold), bits(before.image_threshold));
    }
    // roi.bank still reproduces expected_roi.json.
    expect_plain(roi_bank().score(support::fixture_view()), "roi.bank after recalibrating copies");

    for (float bad : {std::nanf(""), 0.0f, 1.0f, -0.5f, 2.0f}) {
        SCOPED_TRACE(bad);
        expect_error(Status::invalid_argument, "target_fpr", [&] { (void)built.recalibrated(bad); });
        expect_error(Status::invalid_argument, "must be in (0, 1)", [&] { (void)roi_bank().recalibrated(bad); });
    }
    // tiny.bank was saved before banks stored their pixel-score tail: it cannot be moved.
    expect_error(Status::invalid_argument, "pixel-score tail",
                 [&] { (void)support::fixture_bank().recalibrated(0.001f); });
    nexvitad::Bank closed;
    EXPECT_EQ(support::status_of([&] { (void)closed.recalibrated(0.01f); }), Status::invalid_argument);
    EXPECT_EQ(support::status_of([&] { (void)closed.roi(); }), Status::invalid_argument);
}
