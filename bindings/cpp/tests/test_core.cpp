// Scoring through the raw-buffer API, the cross-language fixture, types and logging.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

using nexvitad::ImageView;
using nexvitad::PixelFormat;
using support::bits;
using support::expected;

static_assert(!std::is_copy_constructible_v<nexvitad::Model>);
static_assert(!std::is_copy_assignable_v<nexvitad::Model>);
static_assert(std::is_nothrow_move_constructible_v<nexvitad::Model>);
static_assert(std::is_nothrow_move_assignable_v<nexvitad::Model>);
static_assert(!std::is_copy_constructible_v<nexvitad::Bank>);
static_assert(!std::is_copy_assignable_v<nexvitad::Bank>);
static_assert(std::is_nothrow_move_constructible_v<nexvitad::Bank>);
static_assert(std::is_nothrow_move_assignable_v<nexvitad::Bank>);

TEST(Library, VersionAndAbiMatchTheHeader) {
    EXPECT_STREQ(nexvitad::version(), NEXVITAD_VERSION);
    EXPECT_EQ(nexvitad::abi_version(), static_cast<std::uint32_t>(NEXVITAD_ABI_VERSION));
    EXPECT_NO_THROW(nexvitad::check_abi());
}

TEST(CrossLang, FixtureReproducesRustScoreToTheLastBit) {
    const nexvitad::Result r = support::model().score(support::fixture_bank(), support::fixture_view());
    EXPECT_EQ(r.width, expected().width);
    EXPECT_EQ(r.height, expected().height);
    EXPECT_EQ(bits(r.image_score), expected().image_score_bits);
    EXPECT_EQ(r.is_anomalous, expected().is_anomalous);
    ASSERT_EQ(r.map.size(), expected().map_len);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), expected().map_sha256);
    EXPECT_EQ(r.is_anomalous, r.image_score > r.image_threshold);
}

TEST(CrossLang, CallerBufferAndNoMapGiveTheSameBits) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    const nexvitad::Result ref = m.score(b, support::fixture_view());

    // A larger caller buffer is fine; only the first width x height floats are written.
    std::vector<float> buf(expected().map_len + 7, -1.0f);
    const nexvitad::Result into = m.score(b, support::fixture_view(), buf);
    EXPECT_TRUE(into.map.empty());
    EXPECT_EQ(bits(into.image_score), expected().image_score_bits);
    EXPECT_EQ(std::memcmp(buf.data(), ref.map.data(), ref.map.size() * sizeof(float)), 0);
    EXPECT_EQ(buf.back(), -1.0f);

    const nexvitad::Result none = m.score(b, support::fixture_view(), nexvitad::no_map);
    EXPECT_TRUE(none.map.empty());
    EXPECT_EQ(bits(none.image_score), expected().image_score_bits);
    EXPECT_EQ(none.is_anomalous, expected().is_anomalous);
}

TEST(CrossLang, PaddedRowsScoreLikePackedRows) {
    const std::uint32_t w = expected().width, h = expected().height;
    const std::size_t row = std::size_t{w} * 3, stride = row + 13;
    std::vector<std::uint8_t> padded(stride * h, 0xAB);
    for (std::size_t y = 0; y < h; ++y)
        std::memcpy(&padded[y * stride], &support::fixture_rgb()[y * row], row);

    const nexvitad::Result r = support::model().score(
        support::fixture_bank(), ImageView(padded.data(), w, h, PixelFormat::rgb8, stride));
    EXPECT_EQ(bits(r.image_score), expected().image_score_bits);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), expected().map_sha256);
}

TEST(CrossLang, BgrOrderScoresLikeRgb) {
    std::vector<std::uint8_t> bgr = support::fixture_rgb();
    for (std::size_t i = 0; i < bgr.size(); i += 3) std::swap(bgr[i], bgr[i + 2]);
    const nexvitad::Result r = support::model().score(
        support::fixture_bank(),
        ImageView(bgr.data(), expected().width, expected().height, PixelFormat::bgr8));
    EXPECT_EQ(bits(r.image_score), expected().image_score_bits);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), expected().map_sha256);
}

TEST(Scoring, BatchMatchesOneAtATime) {
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    const std::uint32_t w = expected().width, h = expected().height;
    const auto flipped = support::hflip(support::fixture_rgb(), w, h, 3);
    const ImageView views[] = {support::fixture_view(),
                               ImageView(flipped.data(), w, h, PixelFormat::rgb8)};

    const std::vector<nexvitad::Result> batch = m.score_batch(b, views);
    ASSERT_EQ(batch.size(), 2u);
    for (std::size_t i = 0; i < 2; ++i) {
        const nexvitad::Result one = m.score(b, views[i]);
        EXPECT_EQ(bits(batch[i].image_score), bits(one.image_score)) << i;
        ASSERT_EQ(batch[i].map.size(), one.map.size());
        EXPECT_EQ(std::memcmp(batch[i].map.data(), one.map.data(), one.map.size() * 4), 0) << i;
    }
    // The mirrored image is a different input: its map must differ somewhere.
    EXPECT_NE(std::memcmp(batch[0].map.data(), batch[1].map.data(), batch[0].map.size() * 4), 0);

    const auto no_maps = m.score_batch(b, views, false);
    ASSERT_EQ(no_maps.size(), 2u);
    EXPECT_TRUE(no_maps[1].map.empty());
    EXPECT_EQ(bits(no_maps[1].image_score), bits(batch[1].image_score));

    EXPECT_TRUE(m.score_batch(b, nexvitad::Span<const ImageView>()).empty());
}

TEST(Scoring, ResultFieldsAreConsistent) {
    const nexvitad::Result r = support::model().score(support::fixture_bank(), support::fixture_view());
    const nexvitad::BankInfo info = support::fixture_bank().info();
    EXPECT_EQ(bits(r.image_threshold), bits(info.image_threshold));
    EXPECT_EQ(bits(r.pixel_threshold), bits(info.pixel_threshold));
    float max = r.map[0];
    for (float v : r.map) max = v > max ? v : max;
    EXPECT_EQ(bits(r.image_score), bits(max));  // image score = map max for this bank
    EXPECT_EQ(bits(r.map_at(3, 2)), bits(r.map[2 * r.width + 3]));
    EXPECT_THROW(r.map_at(r.width, 0), std::out_of_range);
    EXPECT_GE(r.timings.total_s(), 0.0);
}

TEST(Model, FingerprintIs64HexDigitsAndStable) {
    const std::string fp = support::model().fingerprint();
    ASSERT_EQ(fp.size(), 64u);
    EXPECT_EQ(fp.find_first_not_of("0123456789abcdef"), std::string::npos);
    nexvitad::Model again(support::model_dir().string());
    EXPECT_EQ(again.fingerprint(), fp);
}

TEST(Model, OptionsReachTheLibrary) {
    nexvitad::ModelOptions o;
    o.intra_threads(1).optimization_level(1).max_image_side(4096);
    EXPECT_EQ(o.intra_threads(), 1u);
    EXPECT_EQ(o.c_options().max_image_side, 4096u);
    nexvitad::Model m(support::model_dir().string(), o);
    const nexvitad::Result r = m.score(support::fixture_bank(), support::fixture_view());
    EXPECT_EQ(r.width, expected().width);

    nexvitad::ModelOptions bad;
    bad.execution_provider("no-such-provider");
    try {
        nexvitad::Model x(support::model_dir().string(), bad);
        FAIL() << "opened with an unknown execution provider";
    } catch (const nexvitad::Error& e) {
        EXPECT_EQ(e.status(), nexvitad::Status::invalid_argument);
        EXPECT_NE(e.message().find("no-such-provider"), std::string::npos) << e.what();
    }
}

TEST(Span, ViewsContainersArraysAndLists) {
    std::vector<float> v(5);
    nexvitad::Span<float> s = v;
    EXPECT_EQ(s.data(), v.data());
    EXPECT_EQ(s.size(), 5u);
    int a[3] = {1, 2, 3};
    nexvitad::Span<const int> sa = a;
    EXPECT_EQ(sa.size(), 3u);
    EXPECT_EQ(sa[2], 3);
    auto sum = [](nexvitad::Span<const int> x) { int t = 0; for (int i : x) t += i; return t; };
    EXPECT_EQ(sum({4, 5, 6}), 15);
    EXPECT_TRUE(nexvitad::Span<int>().empty());
}

TEST(Logging, CallbackReceivesInfoWhenAModelOpens) {
    std::mutex mu;
    std::vector<std::string> lines;
    nexvitad::set_log_callback([&](nexvitad::LogLevel level, const char* msg) {
        std::lock_guard<std::mutex> lock(mu);
        lines.push_back(std::to_string(static_cast<int>(level)) + " " + msg);
    });
    { nexvitad::Model m(support::model_dir().string()); }
    nexvitad::set_log_callback(nullptr);
    std::size_t seen = 0;
    {
        std::lock_guard<std::mutex> lock(mu);
        seen = lines.size();
        ASSERT_GE(seen, 1u);
        EXPECT_EQ(lines[0].substr(0, 2), "1 ");  // LogLevel::info
    }
    { nexvitad::Model m(support::model_dir().string()); }
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(lines.size(), seen);  // removed: nothing more arrives
}

TEST(Logging, ThrowingCallbackDoesNotBreakTheCall) {
    int calls = 0;
    nexvitad::set_log_callback([&](nexvitad::LogLevel, const char*) {
        ++calls;
        throw std::runtime_error("log sink failed");
    });
    EXPECT_NO_THROW({ nexvitad::Model m(support::model_dir().string()); });
    nexvitad::set_log_callback(nullptr);
    EXPECT_GE(calls, 1);
}
