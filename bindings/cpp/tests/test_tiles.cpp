// Tiled banks (C ABI revision 3): BankOptions::tile/tile_overlap/tile_layout, the tiling in
// BankInfo, the cross-language fixture's tiled bank, and the per-position size rule; tiles per
// encoder call when scoring (ModelOptions::tile_batch) and the encoders side by side
// (ModelOptions::parallel_encoders), C ABI revision 6.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using nexvitad::ImageView;
using nexvitad::PixelFormat;
using nexvitad::Stage;
using nexvitad::Status;
using nexvitad::TileLayout;
using support::bits;
using support::expected;

namespace {

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

/// The top-left w x h of the fixture image, without a copy (the stride keeps whole rows).
ImageView fixture_crop(std::uint32_t w, std::uint32_t h) {
    return ImageView(support::fixture_rgb().data(), w, h, PixelFormat::rgb8, std::size_t{expected().width} * 3);
}

nexvitad::BankOptions tiled(std::uint32_t tile, float overlap, TileLayout layout) {
    return support::quick_bank_options().k(8).tile(tile).tile_overlap(overlap).tile_layout(layout);
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

void expect_same_map(const nexvitad::Result& a, const nexvitad::Result& b) {
    EXPECT_EQ(bits(a.image_score), bits(b.image_score));
    EXPECT_EQ(bits(a.image_threshold), bits(b.image_threshold));
    ASSERT_EQ(a.map.size(), b.map.size());
    EXPECT_EQ(std::memcmp(a.map.data(), b.map.data(), a.map.size() * sizeof(float)), 0);
}

void expect_fixture(const nexvitad::Result& r, const support::Expected& want) {
    EXPECT_EQ(bits(r.image_score), want.image_score_bits);
    EXPECT_EQ(bits(r.image_threshold), want.image_threshold_bits);
    EXPECT_EQ(r.is_anomalous, want.is_anomalous);
    EXPECT_EQ(r.width, want.width);
    EXPECT_EQ(r.height, want.height);
    ASSERT_EQ(r.map.size(), want.map_len);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), want.map_sha256);
}

}  // namespace

TEST(Tiles, OptionsDefaultToOffAndReachTheCStruct) {
    ASSERT_GE(nexvitad_abi_revision(), 3u);
    const nexvitad::BankOptions d;
    EXPECT_EQ(d.tile(), 0u);
    EXPECT_EQ(d.tile_overlap(), 0.0f);
    EXPECT_EQ(d.tile_layout(), TileLayout::shared);
    const nexvitad::BankOptions o =
        nexvitad::BankOptions().tile(224).tile_overlap(0.5f).tile_layout(TileLayout::per_position);
    EXPECT_EQ(o.c_options().tile, 224u);
    EXPECT_EQ(o.c_options().tile_overlap, 0.5f);
    EXPECT_EQ(o.c_options().tile_layout, static_cast<std::uint32_t>(NEXVITAD_TILE_PER_POSITION));
    EXPECT_EQ(o.c_options().reserved1, 0u);
    EXPECT_EQ(o.c_options().struct_size, sizeof(nexvitad_bank_options));
}

TEST(Tiles, FixtureBanksReproduceTheRustApi) {
    const auto& m = support::model();
    const nexvitad::Bank tiled_bank = m.load_bank((support::crosslang_dir() / "tiled.bank").string());
    const nexvitad::BankInfo ti = tiled_bank.info();
    EXPECT_TRUE(ti.tiled());
    EXPECT_EQ(ti.tile, 48u);
    EXPECT_EQ(ti.tile_h, 48u);
    EXPECT_EQ(ti.tile_overlap, 0.25f);
    EXPECT_EQ(ti.tile_layout, TileLayout::shared);
    EXPECT_EQ(ti.tile_cols, 0u);
    EXPECT_EQ(ti.image_width, 0u);
    EXPECT_EQ(ti.k, 8u);
    EXPECT_EQ(ti.shots, 3u);
    expect_fixture(m.score(tiled_bank, support::fixture_view()), support::expected_tiled());
    expect_fixture(tiled_bank.score(support::fixture_view()), support::expected_tiled());

    // Saved again and loaded back, it still gives the same bits.
    support::TempDir dir;
    const std::string copy = (dir.path() / "tiled-copy.bank").string();
    tiled_bank.save(copy);
    expect_fixture(m.load_bank(copy).score(support::fixture_view()), support::expected_tiled());

    // The whole-image fixture bank reports no tiling and keeps its own bits.
    const nexvitad::BankInfo wi = support::fixture_bank().info();
    EXPECT_FALSE(wi.tiled());
    EXPECT_EQ(wi.tile_h, 0u);
    EXPECT_EQ(wi.tile_overlap, 0.0f);
    EXPECT_EQ(wi.tile_layout, TileLayout::shared);
    EXPECT_EQ(wi.tile_cols + wi.tile_rows + wi.image_width + wi.image_height, 0u);
    expect_fixture(m.score(support::fixture_bank(), support::fixture_view()), expected());
}

TEST(Tiles, SharedBankBuildSaveLoad) {
    const auto& m = support::model();
    GoodImages good;
    std::size_t encode_total = 0;
    const nexvitad::Bank bank = m.build_bank(good.views(), tiled(48, 0.25f, TileLayout::shared),
                                             [&](Stage s, std::size_t, std::size_t total) {
                                                 if (s == Stage::encode) encode_total = total;
                                                 return true;
                                             });
    EXPECT_EQ(encode_total, 3u * 6u);  // 96x72 in 48 px tiles at overlap 0.25: 3 x 2 tiles
    const nexvitad::BankInfo info = bank.info();
    EXPECT_EQ(info.tile, 48u);
    EXPECT_EQ(info.tile_h, 48u);
    EXPECT_EQ(info.tile_overlap, 0.25f);
    EXPECT_EQ(info.tile_layout, TileLayout::shared);
    EXPECT_EQ(info.tile_cols + info.tile_rows + info.image_width + info.image_height, 0u);
    EXPECT_EQ(info.shots, 3u);
    EXPECT_EQ(info.vectors, 8u);

    const nexvitad::Result r = m.score(bank, support::fixture_view());
    EXPECT_EQ(r.map.size(), std::size_t{expected().width} * expected().height);
    // A shared bank scores any size at least one tile large.
    EXPECT_EQ(m.score(bank, fixture_crop(80, 64)).map.size(), 80u * 64u);
    expect_error(Status::invalid_argument, "tile 48x48 is larger than the 40x40 image",
                 [&] { m.score(bank, fixture_crop(40, 40)); });

    support::TempDir dir;
    const std::string path = (dir.path() / "shared.bank").string();
    bank.save(path);
    const nexvitad::Bank loaded = m.load_bank(path);
    const nexvitad::BankInfo li = loaded.info();
    EXPECT_EQ(li.tile, info.tile);
    EXPECT_EQ(li.tile_overlap, info.tile_overlap);
    EXPECT_EQ(li.tile_layout, info.tile_layout);
    EXPECT_EQ(bits(li.image_threshold), bits(info.image_threshold));
    expect_same_map(r, m.score(loaded, support::fixture_view()));
}

TEST(Tiles, PerPositionBankScoresOnlyItsImageSize) {
    const auto& m = support::model();
    GoodImages good;
    const nexvitad::Bank bank = m.build_bank(good.views(), tiled(48, 0.0f, TileLayout::per_position));
    const nexvitad::BankInfo info = bank.info();
    EXPECT_EQ(info.tile_layout, TileLayout::per_position);
    EXPECT_EQ(info.tile_cols, 2u);
    EXPECT_EQ(info.tile_rows, 2u);
    EXPECT_EQ(info.image_width, expected().width);
    EXPECT_EQ(info.image_height, expected().height);
    EXPECT_EQ(info.vectors, 4u * 8u);  // one bank of k = 8 per position

    const nexvitad::Result r = bank.score(support::fixture_view());
    EXPECT_EQ(r.width, expected().width);
    const std::string needle = "one bank per tile position of 96x72 images";
    expect_error(Status::invalid_argument, needle + "; an image of 80x64 cannot be scored",
                 [&] { m.score(bank, fixture_crop(80, 64)); });
    expect_error(Status::invalid_argument, needle, [&] { bank.score(fixture_crop(80, 64), nexvitad::no_map); });
    expect_error(Status::invalid_argument, needle,
                 [&] { m.score_batch(bank, {support::fixture_view(), fixture_crop(96, 64)}); });

    support::TempDir dir;
    const std::string path = (dir.path() / "per-position.bank").string();
    bank.save(path);
    const nexvitad::Bank loaded = m.load_bank(path);
    EXPECT_EQ(loaded.info().tile_cols, 2u);
    EXPECT_EQ(loaded.info().image_height, expected().height);
    expect_same_map(r, loaded.score(support::fixture_view()));
    expect_error(Status::invalid_argument, needle, [&] { loaded.score(fixture_crop(80, 64)); });
}

TEST(Tiles, BadTileOptionsThrow) {
    const auto& m = support::model();
    GoodImages good;
    const auto views = good.views();
    expect_error(Status::invalid_argument, "options->tile_overlap 1 must be in [0, 1)",
                 [&] { m.build_bank(views, tiled(48, 1.0f, TileLayout::shared)); });
    expect_error(Status::invalid_argument, "must be in [0, 1)",
                 [&] { m.build_bank(views, tiled(48, -0.1f, TileLayout::shared)); });
    expect_error(Status::invalid_argument, "options->tile_layout 7 is not a nexvitad_tile_layout", [&] {
        m.build_bank(views, tiled(48, 0.0f, static_cast<TileLayout>(7)));
    });
    expect_error(Status::invalid_argument, "options->tile_overlap is NaN",
                 [&] { m.build_bank(views, tiled(48, std::nanf(""), TileLayout::shared)); });
    // NaN is refused even with tiling off.
    expect_error(Status::invalid_argument, "options->tile_overlap is NaN",
                 [&] { m.build_bank(views, tiled(0, std::nanf(""), TileLayout::shared)); });
    expect_error(Status::invalid_argument, "images[0]: tile 224x224 is larger than the 96x72 image",
                 [&] { m.build_bank(views, tiled(224, 0.0f, TileLayout::shared)); });
    // No fixed bound on the tile: 20000 is refused as larger than the image.
    expect_error(Status::invalid_argument, "images[0]: tile 20000x20000 is larger than the 96x72 image",
                 [&] { m.build_bank(views, tiled(20000, 0.0f, TileLayout::shared)); });
    expect_error(Status::limit_exceeded, "MAX_TILES",
                 [&] { m.build_bank(views, tiled(2, 0.9f, TileLayout::shared)); });
    expect_error(Status::invalid_argument, "needs images of one size: images[0] is 96x72, images[1] is 80x64", [&] {
        m.build_bank({support::fixture_view(), fixture_crop(80, 64)}, tiled(48, 0.0f, TileLayout::per_position));
    });
}

TEST(Tiles, TileBatchDefaultsToZeroAndReachesTheCStruct) {
    ASSERT_GE(nexvitad_abi_revision(), 6u);
    const nexvitad::ModelOptions d;
    EXPECT_EQ(d.tile_batch(), 0u);  // 0 = the execution provider's default
    EXPECT_EQ(d.c_options().tile_batch, 0u);
    EXPECT_EQ(d.c_options().parallel_encoders, 0u);
    EXPECT_EQ(d.c_options().struct_size, sizeof(nexvitad_options));
    const nexvitad::ModelOptions o = nexvitad::ModelOptions().tile_batch(256);
    EXPECT_EQ(o.tile_batch(), 256u);
    EXPECT_EQ(o.c_options().tile_batch, 256u);
    EXPECT_EQ(o.c_options().parallel_encoders, 0u);
}

TEST(Tiles, TileBatchOneAndMaxScoreAsTheDefault) {
    ASSERT_GE(nexvitad_abi_revision(), 6u);
    const auto& m = support::model();  // the default tile batch
    const nexvitad::Bank bank = m.load_bank((support::crosslang_dir() / "tiled.bank").string());
    GoodImages good;
    const std::vector<ImageView> views = good.views();  // 3 images of 6 tiles each
    const nexvitad::Result want = m.score(bank, support::fixture_view());
    const std::vector<nexvitad::Result> want_batch = m.score_batch(bank, views);
    ASSERT_EQ(want_batch.size(), views.size());
    const auto close_to = [](float got, float ref) {
        return std::fabs(got - ref) <= 1e-4f * std::fabs(ref);
    };
    for (const std::uint32_t n : {1u, 256u}) {
        SCOPED_TRACE("tile_batch " + std::to_string(n));
        const nexvitad::Model mn(support::model_dir().string(), nexvitad::ModelOptions().tile_batch(n));
        EXPECT_EQ(mn.fingerprint(), m.fingerprint());
        const nexvitad::Result r = mn.score(bank, support::fixture_view());
        EXPECT_TRUE(close_to(r.image_score, want.image_score)) << r.image_score << " vs " << want.image_score;
        EXPECT_EQ(bits(r.image_threshold), bits(want.image_threshold));
        EXPECT_EQ(r.width, want.width);
        EXPECT_EQ(r.height, want.height);
        EXPECT_EQ(r.map.size(), want.map.size());
        // A batch: the tiles of the next images fill each encoder call.
        const std::vector<nexvitad::Result> batch = mn.score_batch(bank, views);
        ASSERT_EQ(batch.size(), views.size());
        for (std::size_t i = 0; i < batch.size(); ++i)
            EXPECT_TRUE(close_to(batch[i].image_score, want_batch[i].image_score))
                << "image " << i << ": " << batch[i].image_score << " vs " << want_batch[i].image_score;
    }
}

TEST(Tiles, TileBatchAboveTheCapThrows) {
    ASSERT_GE(nexvitad_abi_revision(), 6u);
    expect_error(Status::invalid_argument, "tile_batch 257", [] {
        const nexvitad::Model x(support::model_dir().string(), nexvitad::ModelOptions().tile_batch(257));
    });
}

// ModelOptions::parallel_encoders (C ABI revision 6): the two encoders side by side.
TEST(Tiles, ParallelEncodersDefaultsToOffAndReachesTheCStruct) {
    ASSERT_GE(nexvitad_abi_revision(), 6u);
    const nexvitad::ModelOptions d;
    EXPECT_FALSE(d.parallel_encoders());
    EXPECT_EQ(d.c_options().parallel_encoders, 0u);
    const nexvitad::ModelOptions o = nexvitad::ModelOptions().tile_batch(8).parallel_encoders(true);
    EXPECT_TRUE(o.parallel_encoders());
    EXPECT_EQ(o.c_options().parallel_encoders, 1u);
    EXPECT_EQ(o.c_options().tile_batch, 8u);
    EXPECT_FALSE(nexvitad::ModelOptions(o).parallel_encoders(false).parallel_encoders());
    EXPECT_EQ(nexvitad::ModelOptions(o).parallel_encoders(false).c_options().parallel_encoders, 0u);
}

TEST(Tiles, ParallelEncodersScoreAsTheDefault) {
    ASSERT_GE(nexvitad_abi_revision(), 6u);
    const auto& m = support::model();  // encoders one after the other
    const nexvitad::Bank& bank = support::fixture_bank();  // crosslang tiny.bank
    const nexvitad::Result want = m.score(bank, support::fixture_view());
    const nexvitad::Model mp(support::model_dir().string(), nexvitad::ModelOptions().parallel_encoders(true));
    EXPECT_EQ(mp.fingerprint(), m.fingerprint());
    const nexvitad::Bank bp = mp.load_bank((support::crosslang_dir() / "tiny.bank").string());
    const nexvitad::Result r = mp.score(bp, support::fixture_view());
    EXPECT_LE(std::fabs(r.image_score - want.image_score), 1e-5f * std::fabs(want.image_score))
        << r.image_score << " vs " << want.image_score;
    EXPECT_EQ(bits(r.image_threshold), bits(want.image_threshold));
    EXPECT_EQ(r.width, want.width);
    EXPECT_EQ(r.height, want.height);
    EXPECT_EQ(r.map.size(), want.map.size());
    // The bank loaded by the default model scores on the parallel one too (same fingerprint).
    const nexvitad::Result r2 = mp.score(bank, support::fixture_view());
    EXPECT_LE(std::fabs(r2.image_score - want.image_score), 1e-5f * std::fabs(want.image_score));
}

TEST(Tiles, ParallelEncodersOtherThanZeroOrOneIsRefused) {
    ASSERT_GE(nexvitad_abi_revision(), 6u);
    // The options object owns the strings c_options() points to: it must outlive `o`.
    nexvitad::ModelOptions opts;
    nexvitad_options o = opts.c_options();
    o.parallel_encoders = 2;  // not reachable through the bool setter: the C struct directly
    nexvitad_model* h = nullptr;
    EXPECT_EQ(nexvitad_model_open(support::model_dir().string().c_str(), &o, &h), NEXVITAD_INVALID_ARGUMENT);
    EXPECT_EQ(h, nullptr);
    if (h) nexvitad_model_free(h);
    EXPECT_NE(std::string(nexvitad_last_error()).find("parallel_encoders is 2"), std::string::npos)
        << nexvitad_last_error();
}
