// One model and one bank used from several threads at once: results identical to serial.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using nexvitad::ImageView;
using nexvitad::PixelFormat;
using support::expected;

TEST(Threads, ConcurrentScoresMatchSerial) {
    // Shared the way an application would share them: shared_ptr to const objects.
    const auto model = std::make_shared<const nexvitad::Model>(support::model_dir().string());
    const auto bank = std::make_shared<const nexvitad::Bank>(
        model->load_bank((support::crosslang_dir() / "tiny.bank").string()));

    const std::uint32_t w = expected().width, h = expected().height;
    const auto hf = support::hflip(support::fixture_rgb(), w, h, 3);
    const auto vf = support::vflip(support::fixture_rgb(), w, h, 3);
    const std::vector<ImageView> images = {support::fixture_view(),
                                           ImageView(hf.data(), w, h, PixelFormat::rgb8),
                                           ImageView(vf.data(), w, h, PixelFormat::rgb8)};
    std::vector<nexvitad::Result> serial;
    for (const auto& img : images) serial.push_back(model->score(*bank, img));

    constexpr int kThreads = 4, kRounds = 3;
    std::vector<std::vector<nexvitad::Result>> got(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int r = 0; r < kRounds; ++r)
                for (std::size_t i = 0; i < images.size(); ++i) {
                    // Each thread walks the images from a different start.
                    const std::size_t k = (i + static_cast<std::size_t>(t)) % images.size();
                    got[static_cast<std::size_t>(t)].push_back(model->score(*bank, images[k]));
                }
        });
    }
    for (auto& th : threads) th.join();

    for (int t = 0; t < kThreads; ++t) {
        const auto& results = got[static_cast<std::size_t>(t)];
        ASSERT_EQ(results.size(), images.size() * kRounds);
        for (std::size_t j = 0; j < results.size(); ++j) {
            const std::size_t k = (j % images.size() + static_cast<std::size_t>(t)) % images.size();
            const auto& want = serial[k];
            EXPECT_EQ(support::bits(results[j].image_score), support::bits(want.image_score));
            ASSERT_EQ(results[j].map.size(), want.map.size());
            EXPECT_EQ(std::memcmp(results[j].map.data(), want.map.data(), want.map.size() * 4), 0)
                << "thread " << t << " result " << j;
        }
    }
    EXPECT_EQ(support::bits(serial[0].image_score), expected().image_score_bits);
}

TEST(Threads, ErrorsStayOnTheirThread) {
    // The C library keeps one error message per thread; each thread's exception must carry
    // its own failure even while other threads fail differently at the same time.
    const auto& m = support::model();
    const auto& b = support::fixture_bank();
    std::vector<std::string> msgs(2);
    std::thread t1([&] {
        for (int i = 0; i < 20; ++i) {
            try { m.score(b, ImageView()); } catch (const nexvitad::Error& e) { msgs[0] = e.message(); }
        }
    });
    std::thread t2([&] {
        for (int i = 0; i < 20; ++i) {
            try { m.load_bank("/nonexistent/dir/x.bank"); } catch (const nexvitad::Error& e) { msgs[1] = e.message(); }
        }
    });
    t1.join();
    t2.join();
    EXPECT_EQ(msgs[0].find("x.bank"), std::string::npos) << msgs[0];
    EXPECT_NE(msgs[1].find("x.bank"), std::string::npos) << msgs[1];
    EXPECT_NE(msgs[0], msgs[1]);
}
