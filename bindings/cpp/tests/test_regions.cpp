// Per-call thresholds and defect regions (C ABI revision 3): ScoreOptions, Region,
// Result::regions and Result::threshold_flags, the cross-language fixture's region list to
// the last bit, and the retry when more regions exist than the first array holds.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using nexvitad::Region;
using nexvitad::Result;
using nexvitad::ScoreOptions;
using nexvitad::Status;
using support::bits;
using support::expected_tiled;

namespace {

const nexvitad::Bank& tiled_bank() {
    static const nexvitad::Bank b =
        support::model().load_bank((support::crosslang_dir() / "tiled.bank").string());
    return b;
}

/// The options that reproduce expected_tiled.json's region list.
ScoreOptions fixture_options() {
    const std::uint32_t b = expected_tiled().regions_pixel_threshold_bits;
    float t;
    std::memcpy(&t, &b, sizeof t);
    return ScoreOptions().pixel_threshold(t).min_region_area(0);
}

void expect_fixture_regions(const std::vector<Region>& got, const char* what) {
    const auto& want = expected_tiled().regions;
    ASSERT_EQ(got.size(), want.size()) << what;
    for (std::size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE(std::string(what) + ": region " + std::to_string(i));
        EXPECT_EQ(got[i].x, want[i].x);
        EXPECT_EQ(got[i].y, want[i].y);
        EXPECT_EQ(got[i].width, want[i].width);
        EXPECT_EQ(got[i].height, want[i].height);
        EXPECT_EQ(got[i].area, want[i].area);
        EXPECT_EQ(bits(got[i].peak), want[i].peak_bits);
        EXPECT_EQ(bits(got[i].mean), want[i].mean_bits);
        EXPECT_EQ(bits(got[i].centroid_x), want[i].centroid_x_bits);
        EXPECT_EQ(bits(got[i].centroid_y), want[i].centroid_y_bits);
    }
}

bool same_region(const Region& a, const Region& b) {
    return a.x == b.x && a.y == b.y && a.width == b.width && a.height == b.height && a.area == b.area &&
           bits(a.peak) == bits(b.peak) && bits(a.mean) == bits(b.mean) &&
           bits(a.centroid_x) == bits(b.centroid_x) && bits(a.centroid_y) == bits(b.centroid_y);
}

}  // namespace

TEST(Regions, OptionsDefaultToTheBanksThresholds) {
    ASSERT_GE(nexvitad_abi_revision(), 3u);
    const ScoreOptions d;
    EXPECT_EQ(d.image_threshold(), -1.0f);
    EXPECT_EQ(d.pixel_threshold(), -1.0f);
    EXPECT_EQ(d.min_region_area(), 0u);
    EXPECT_TRUE(d.regions());
    EXPECT_EQ(d.c_options().struct_size, sizeof(nexvitad_score_options));
    const ScoreOptions o = ScoreOptions().image_threshold(0.0f).pixel_threshold(2.5f).min_region_area(7);
    EXPECT_EQ(o.c_options().image_threshold, 0.0f);
    EXPECT_EQ(o.c_options().pixel_threshold, 2.5f);
    EXPECT_EQ(o.c_options().min_region_area, 7u);
    const ScoreOptions back = ScoreOptions(o).bank_image_threshold().bank_pixel_threshold();
    EXPECT_LT(back.image_threshold(), 0.0f);
    EXPECT_LT(back.pixel_threshold(), 0.0f);
    EXPECT_EQ(static_cast<std::uint32_t>(nexvitad::TileLayout::shared), static_cast<std::uint32_t>(NEXVITAD_TILE_SHARED));
    EXPECT_EQ(nexvitad::threshold_source::image_from_caller, 1u);
    EXPECT_EQ(nexvitad::threshold_source::pixel_from_caller, 2u);
}

TEST(Regions, DefaultOptionsScoreAsPlainScore) {
    const auto& m = support::model();
    for (const nexvitad::Bank* b : {&support::fixture_bank(), &tiled_bank()}) {
        const Result plain = m.score(*b, support::fixture_view());
        const Result with = m.score(*b, support::fixture_view(), ScoreOptions());
        EXPECT_EQ(bits(with.image_score), bits(plain.image_score));
        EXPECT_EQ(bits(with.image_threshold), bits(plain.image_threshold));
        EXPECT_EQ(bits(with.pixel_threshold), bits(plain.pixel_threshold));
        EXPECT_EQ(with.is_anomalous, plain.is_anomalous);
        ASSERT_EQ(with.map.size(), plain.map.size());
        EXPECT_EQ(std::memcmp(with.map.data(), plain.map.data(), plain.map.size() * sizeof(float)), 0);
        EXPECT_EQ(with.threshold_flags, nexvitad::threshold_source::bank);
        EXPECT_FALSE(with.image_threshold_from_caller());
        EXPECT_EQ(plain.threshold_flags, 0u);
        EXPECT_TRUE(plain.regions.empty());
        // Every region lies above the bank's pixel threshold.
        for (const Region& r : with.regions) EXPECT_GT(r.peak, with.pixel_threshold);
    }
}

TEST(Regions, FixtureRegionListBitExact) {
    ASSERT_FALSE(expected_tiled().regions.empty());
    const auto& m = support::model();
    const ScoreOptions o = fixture_options();

    const Result r = m.score(tiled_bank(), support::fixture_view(), o);
    expect_fixture_regions(r.regions, "Model::score");
    EXPECT_EQ(r.threshold_flags, nexvitad::threshold_source::pixel_from_caller);
    EXPECT_TRUE(r.pixel_threshold_from_caller());
    EXPECT_FALSE(r.image_threshold_from_caller());
    EXPECT_EQ(bits(r.pixel_threshold), expected_tiled().regions_pixel_threshold_bits);
    EXPECT_EQ(bits(r.image_score), expected_tiled().image_score_bits);
    EXPECT_EQ(bits(r.image_threshold), expected_tiled().image_threshold_bits);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), expected_tiled().map_sha256);

    expect_fixture_regions(tiled_bank().score(support::fixture_view(), o).regions, "Bank::score");
    expect_fixture_regions(tiled_bank().score(support::fixture_view(), nexvitad::no_map, o).regions,
                           "Bank::score, no map");
    std::vector<float> buf(support::fixture_view().pixels());
    const Result into = m.score(tiled_bank(), support::fixture_view(), buf, o);
    expect_fixture_regions(into.regions, "Model::score into a buffer");
    EXPECT_TRUE(into.map.empty());
    EXPECT_EQ(support::sha256_hex(buf.data(), buf.size()), expected_tiled().map_sha256);
}

TEST(Regions, MoreRegionsThanTheFirstArrayHoldsAreAllReturned) {
    const auto& m = support::model();
    const std::size_t n = expected_tiled().regions.size();
    ASSERT_GT(n, 2u);
    // Room for 0, 1 and n - 1 regions first: the binding scores again with room for all.
    for (std::size_t cap : {std::size_t{0}, std::size_t{1}, n - 1, n}) {
        const Result r = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map,
                                 fixture_options().region_capacity(cap));
        expect_fixture_regions(r.regions, ("first capacity " + std::to_string(cap)).c_str());
    }
    // Regions off: none found, the same score.
    const Result off = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map, fixture_options().regions(false));
    EXPECT_TRUE(off.regions.empty());
    EXPECT_EQ(bits(off.image_score), expected_tiled().image_score_bits);
    EXPECT_TRUE(off.pixel_threshold_from_caller());
}

TEST(Regions, MinAreaKeepsTheLargerRegionsInOrder) {
    const auto& m = support::model();
    const Result all = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map, fixture_options());
    const Result big = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map, fixture_options().min_region_area(20));
    std::vector<Region> want;
    for (const Region& r : all.regions)
        if (r.area >= 20) want.push_back(r);
    ASSERT_EQ(big.regions.size(), want.size());
    ASSERT_LT(want.size(), all.regions.size());  // the fixture has regions below 20 pixels
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(same_region(big.regions[i], want[i])) << i;
    const Result none = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map,
                                fixture_options().min_region_area(std::numeric_limits<std::uint64_t>::max()));
    EXPECT_TRUE(none.regions.empty());
}

TEST(Regions, CallerImageThreshold) {
    const auto& m = support::model();
    const Result zero = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map, ScoreOptions().image_threshold(0.0f));
    EXPECT_EQ(zero.image_threshold, 0.0f);
    EXPECT_TRUE(zero.is_anomalous);
    EXPECT_EQ(zero.threshold_flags, nexvitad::threshold_source::image_from_caller);
    // Negative = the bank's, as in C.
    const Result neg = m.score(tiled_bank(), support::fixture_view(), nexvitad::no_map,
                               ScoreOptions().image_threshold(-5.0f).pixel_threshold(-INFINITY));
    EXPECT_EQ(neg.threshold_flags, 0u);
    EXPECT_EQ(bits(neg.image_threshold), expected_tiled().image_threshold_bits);
    EXPECT_EQ(bits(neg.pixel_threshold), bits(tiled_bank().info().pixel_threshold));
}

TEST(Regions, BadOptionsThrow) {
    const auto& m = support::model();
    const auto view = support::fixture_view();
    for (float bad : {std::nanf(""), INFINITY}) {
        try {
            m.score(tiled_bank(), view, nexvitad::no_map, ScoreOptions().image_threshold(bad));
            ADD_FAILURE() << "image threshold " << bad << " was accepted";
        } catch (const nexvitad::Error& e) {
            EXPECT_EQ(e.status(), Status::invalid_argument);
            EXPECT_NE(e.message().find("image_threshold"), std::string::npos) << e.what();
        }
    }
    try {
        tiled_bank().score(view, ScoreOptions().pixel_threshold(std::nanf("")));
        ADD_FAILURE() << "a NaN pixel threshold was accepted";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), Status::invalid_argument);
        EXPECT_NE(e.message().find("pixel_threshold NaN must be finite and >= 0"), std::string::npos) << e.what();
    }
    ScoreOptions wrong_size;
    wrong_size.c_options().struct_size = 3;
    EXPECT_EQ(support::status_of([&] { m.score(tiled_bank(), view, wrong_size); }), Status::invalid_argument);
    nexvitad::Bank closed;
    EXPECT_EQ(support::status_of([&] { closed.score(view, ScoreOptions()); }), Status::invalid_argument);
    EXPECT_EQ(support::status_of([&] { m.score(tiled_bank(), nexvitad::ImageView(), ScoreOptions()); }),
              Status::invalid_argument);
}

TEST(Regions, BatchWithOptionsDecidesAtTheCallersThresholdsAndCountsRegions) {
    ASSERT_GE(nexvitad_abi_revision(), 5u);
    const auto& m = support::model();
    const std::vector<std::uint8_t> flipped =
        support::hflip(support::fixture_rgb(), support::expected().width, support::expected().height, 3);
    const std::vector<nexvitad::ImageView> views = {
        support::fixture_view(),
        nexvitad::ImageView(flipped.data(), support::expected().width, support::expected().height,
                            nexvitad::PixelFormat::rgb8)};
    const ScoreOptions o = fixture_options().image_threshold(0.0f);
    const std::vector<Result> batch = m.score_batch(tiled_bank(), views, o);
    ASSERT_EQ(batch.size(), views.size());
    const std::vector<Result> no_maps = m.score_batch(tiled_bank(), views, o, false);
    ASSERT_EQ(no_maps.size(), views.size());
    for (std::size_t i = 0; i < views.size(); ++i) {
        SCOPED_TRACE("image " + std::to_string(i));
        const Result& r = batch[i];
        EXPECT_TRUE(r.is_anomalous);
        EXPECT_EQ(r.image_threshold, 0.0f);
        EXPECT_TRUE(r.image_threshold_from_caller());
        EXPECT_TRUE(r.pixel_threshold_from_caller());
        EXPECT_EQ(r.threshold_flags,
                  nexvitad::threshold_source::image_from_caller | nexvitad::threshold_source::pixel_from_caller);
        EXPECT_TRUE(r.regions.empty());  // counted, not returned
        // The single-image call at the same options: the same count, score and map.
        const Result one = m.score(tiled_bank(), views[i], o);
        EXPECT_EQ(r.region_count, one.regions.size());
        EXPECT_EQ(r.region_count, one.region_count);
        EXPECT_EQ(bits(r.image_score), bits(one.image_score));
        ASSERT_EQ(r.map.size(), one.map.size());
        EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), support::sha256_hex(one.map.data(), one.map.size()));
        EXPECT_TRUE(no_maps[i].map.empty());
        EXPECT_EQ(no_maps[i].region_count, r.region_count);
    }
    EXPECT_EQ(batch[0].region_count, expected_tiled().regions.size());
    // min_region_area counts only the larger regions.
    const std::vector<Result> big = m.score_batch(tiled_bank(), views, ScoreOptions(o).min_region_area(20), false);
    for (std::size_t i = 0; i < views.size(); ++i) {
        const Result one = m.score(tiled_bank(), views[i], nexvitad::no_map, ScoreOptions(o).min_region_area(20));
        EXPECT_EQ(big[i].region_count, one.regions.size()) << i;
    }
    EXPECT_LT(big[0].region_count, batch[0].region_count);
    // Default options: the plain batch's decisions, the bank's thresholds.
    const std::vector<Result> plain = m.score_batch(tiled_bank(), views, false);
    const std::vector<Result> defaults = m.score_batch(tiled_bank(), views, ScoreOptions(), false);
    for (std::size_t i = 0; i < views.size(); ++i) {
        EXPECT_EQ(bits(defaults[i].image_score), bits(plain[i].image_score)) << i;
        EXPECT_EQ(bits(defaults[i].image_threshold), bits(plain[i].image_threshold)) << i;
        EXPECT_EQ(defaults[i].is_anomalous, plain[i].is_anomalous) << i;
        EXPECT_EQ(defaults[i].threshold_flags, 0u) << i;
        EXPECT_EQ(plain[i].region_count, 0u) << i;
    }
    // No images: nothing to do.
    EXPECT_TRUE(m.score_batch(tiled_bank(), std::vector<nexvitad::ImageView>{}, o).empty());
}

TEST(Regions, BatchWithOptionsRefusesANaNThreshold) {
    const auto& m = support::model();
    const std::vector<nexvitad::ImageView> views = {support::fixture_view(), support::fixture_view()};
    for (const ScoreOptions& bad :
         {ScoreOptions().image_threshold(std::nanf("")), ScoreOptions().pixel_threshold(std::nanf("")),
          ScoreOptions().image_threshold(INFINITY)}) {
        try {
            (void)m.score_batch(tiled_bank(), views, bad);
            ADD_FAILURE() << "a bad threshold was accepted";
        } catch (const nexvitad::Error& e) {
            EXPECT_EQ(e.status(), Status::invalid_argument);
            EXPECT_NE(e.message().find("nexvitad_score_batch_with_options"), std::string::npos) << e.what();
            EXPECT_NE(e.message().find("must be finite and >= 0"), std::string::npos) << e.what();
        }
    }
    try {
        (void)m.score_batch(tiled_bank(), views, ScoreOptions().image_threshold(std::nanf("")), false);
        ADD_FAILURE() << "a NaN image threshold was accepted";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), Status::invalid_argument);
        EXPECT_NE(e.message().find("image_threshold NaN must be finite and >= 0"), std::string::npos) << e.what();
    }
    ScoreOptions wrong_size;
    wrong_size.c_options().struct_size = 3;
    EXPECT_EQ(support::status_of([&] { (void)m.score_batch(tiled_bank(), views, wrong_size); }),
              Status::invalid_argument);
    nexvitad::Bank closed;
    EXPECT_EQ(support::status_of([&] { (void)m.score_batch(closed, views, ScoreOptions()); }),
              Status::invalid_argument);
}
