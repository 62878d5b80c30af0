// Compiled (not run) with strict warnings, with and without NEXVITAD_WITH_OPENCV: the header
// must be clean wherever users include it. Instantiates the templates a user would.
#include <nexvitad.hpp>

#include <array>
#include <vector>

float nexvitad_header_check(const nexvitad::Model& m, const nexvitad::Bank& b,
                            const std::vector<nexvitad::ImageView>& images,
                            std::vector<float>& map) {
    std::array<nexvitad::ImageView, 1> one{images.at(0)};
    nexvitad::Bank built = m.build_bank(one, nexvitad::BankOptions().k(4),
                                        [](nexvitad::Stage, std::size_t, std::size_t) { return true; });
    float s = m.score(b, images.at(0), map).image_score;
    s += m.score_batch(built, images).at(0).image_score;
    s += m.score(b, {images.at(0)}, nexvitad::no_map).image_score;
#ifdef NEXVITAD_WITH_OPENCV
    std::vector<cv::Mat> mats(1);
    cv::Mat out;
    s += m.score(b, mats.at(0), out).image_score;
    s += m.score(m.build_bank(mats), mats.at(0)).image_score;
    s += nexvitad::map_mat(m.score(b, nexvitad::view(mats.at(0), nexvitad::PixelFormat::rgb8))).at<float>(0, 0);
#endif
    return s;
}
