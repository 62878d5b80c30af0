// Test helper of the inspect example (not part of the example itself).
//
//   testdata make SAMPLE DIR   empties DIR, writes DIR/good/*.png (the sample and its mirrors) and
//                              DIR/test/*.png (a crop, a gray copy, one with a painted defect)
//   testdata check IN OUT      checks OUT/<name>_heatmap.png exists for every IN/*.png, is a
//                              readable 3-channel image of the same size as its input
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <iostream>
#include <string>

namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const cv::Mat& m) {
    if (!cv::imwrite(p.string(), m)) throw std::runtime_error("cannot write " + p.string());
}

int make(const std::string& sample, const fs::path& dir) {
    const cv::Mat img = cv::imread(sample, cv::IMREAD_COLOR);
    if (img.empty()) throw std::runtime_error("cannot read " + sample);
    fs::remove_all(dir);  // no heatmaps left over from an earlier run
    fs::create_directories(dir / "good");
    fs::create_directories(dir / "test");
    cv::Mat h, v, gray, defect = img.clone();
    cv::flip(img, h, 1);
    cv::flip(img, v, 0);
    write(dir / "good" / "good_0.png", img);
    write(dir / "good" / "good_1.png", h);
    write(dir / "good" / "good_2.png", v);
    write(dir / "test" / "crop.png", img(cv::Rect(20, 10, 160, 120)));  // another size
    cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
    write(dir / "test" / "gray.png", gray);
    cv::rectangle(defect, cv::Rect(img.cols / 2, img.rows / 2, 24, 16), cv::Scalar(255, 0, 255), cv::FILLED);
    write(dir / "test" / "defect.png", defect);
    return 0;
}

int check(const fs::path& in, const fs::path& out) {
    int checked = 0, bad = 0;
    for (const auto& e : fs::directory_iterator(in)) {
        if (e.path().extension() != ".png") continue;
        const cv::Mat src = cv::imread(e.path().string(), cv::IMREAD_UNCHANGED);
        const fs::path heat = out / (e.path().stem().string() + "_heatmap.png");
        const cv::Mat h = cv::imread(heat.string(), cv::IMREAD_UNCHANGED);
        ++checked;
        if (h.empty()) {
            std::cerr << "missing or unreadable: " << heat << "\n";
            ++bad;
        } else if (h.size() != src.size() || h.type() != CV_8UC3) {
            std::cerr << heat << ": " << h.cols << "x" << h.rows << " type " << cv::typeToString(h.type())
                      << ", expected " << src.cols << "x" << src.rows << " CV_8UC3\n";
            ++bad;
        }
    }
    std::cout << checked << " heatmaps checked, " << bad << " bad\n";
    return checked > 0 && bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "make" && argc == 4) return make(argv[2], argv[3]);
        if (cmd == "check" && argc == 4) return check(argv[2], argv[3]);
    } catch (const std::exception& e) {
        std::cerr << "testdata: " << e.what() << "\n";
        return 1;
    }
    std::cerr << "usage: testdata make SAMPLE DIR | testdata check IN OUT\n";
    return 2;
}
