// inspect: build a nexvitad bank from a folder of good images, score images, write heatmaps.
//
//   inspect --model DIR --good DIR --out DIR [--bank FILE] [--seed N] IMAGE...
//   inspect --model DIR --bank FILE --out DIR IMAGE...        (reuse a saved bank)
//
// For every IMAGE it prints "path score threshold ok|DEFECT" and writes
// OUT/<name>_heatmap.png: the anomaly map through cv::applyColorMap (JET) blended onto the
// image. The colour scale is fixed by the bank, not by the image: 0 is blue, the bank's
// pixel threshold is the middle (green), twice the threshold and above is red - so a good
// image stays cool instead of having its own noise stretched to full red.
#include <nexvitad.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Args {
    std::string model, good, out, bank;
    std::uint64_t seed = 0;
    std::vector<std::string> images;
};

int usage() {
    std::cerr << "usage: inspect --model DIR (--good DIR | --bank FILE) --out DIR [--bank FILE]"
                 " [--seed N] IMAGE...\n";
    return 2;
}

bool is_image(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tif" ||
           ext == ".tiff";
}

cv::Mat read_image(const std::string& path) {
    cv::Mat img = cv::imread(path, cv::IMREAD_COLOR);  // 8-bit BGR, whatever the file holds
    if (img.empty()) throw std::runtime_error("cannot read image " + path);
    return img;
}

/// The good images of a folder, in name order (so the bank does not depend on the file system).
std::vector<cv::Mat> read_folder(const std::string& dir) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && is_image(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw std::runtime_error("no images in " + dir);
    std::vector<cv::Mat> images;
    for (const auto& f : files) images.push_back(read_image(f.string()));
    return images;
}

/// The map coloured on a fixed scale (see the top of the file), blended onto the image.
cv::Mat overlay(const cv::Mat& image, const cv::Mat& map, const nexvitad::Result& r) {
    const double full = r.pixel_threshold > 0 ? 2.0 * r.pixel_threshold : std::max(1e-6f, r.image_score);
    cv::Mat scaled, colour, out;
    map.convertTo(scaled, CV_8U, 255.0 / full);  // saturates above `full`
    cv::applyColorMap(scaled, colour, cv::COLORMAP_JET);
    cv::addWeighted(image, 0.5, colour, 0.5, 0.0, out);
    char label[64];
    std::snprintf(label, sizeof label, "%s %.3f", r.is_anomalous ? "DEFECT" : "ok", r.image_score);
    cv::putText(out, label, cv::Point(4, 14), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                r.is_anomalous ? cv::Scalar(0, 0, 255) : cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    return out;
}

int run(const Args& a) {
    const nexvitad::Model model(a.model);

    nexvitad::Bank bank;
    if (!a.good.empty()) {
        const std::vector<cv::Mat> good = read_folder(a.good);
        std::cerr << "building a bank from " << good.size() << " good images\n";
        bank = model.build_bank(good, nexvitad::BankOptions().seed(a.seed),
                                [](nexvitad::Stage stage, std::size_t done, std::size_t total) {
                                    static const char* names[] = {"encode", "cluster", "calibrate"};
                                    std::cerr << "\r  " << names[static_cast<int>(stage) % 3] << " "
                                              << done << "/" << total << "   " << std::flush;
                                    return true;
                                });
        std::cerr << "\n";
        if (!a.bank.empty()) bank.save(a.bank);
    } else {
        bank = model.load_bank(a.bank);
    }

    fs::create_directories(a.out);
    for (const std::string& path : a.images) {
        const cv::Mat image = read_image(path);
        cv::Mat map;
        const nexvitad::Result r = model.score(bank, image, map);
        const fs::path heat = fs::path(a.out) / (fs::path(path).stem().string() + "_heatmap.png");
        if (!cv::imwrite(heat.string(), overlay(image, map, r))) {
            throw std::runtime_error("cannot write " + heat.string());
        }
        std::printf("%s %.6f %.6f %s\n", path.c_str(), static_cast<double>(r.image_score),
                    static_cast<double>(r.image_threshold), r.is_anomalous ? "DEFECT" : "ok");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
            return argv[++i];
        };
        try {
            if (arg == "--model") a.model = value();
            else if (arg == "--good") a.good = value();
            else if (arg == "--out") a.out = value();
            else if (arg == "--bank") a.bank = value();
            else if (arg == "--seed") a.seed = std::stoull(value());
            else if (arg.rfind("--", 0) == 0) return usage();
            else a.images.push_back(arg);
        } catch (const std::exception& e) {
            std::cerr << "inspect: " << e.what() << "\n";
            return usage();
        }
    }
    if (a.model.empty() || a.out.empty() || (a.good.empty() && a.bank.empty()) || a.images.empty()) {
        return usage();
    }
    try {
        return run(a);
    } catch (const nexvitad::Error& e) {
        std::cerr << "inspect: " << e.what() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "inspect: " << e.what() << "\n";
    }
    return 1;
}
