#ifndef BALLAST_TESTS_SUPPORT_TEMP_DIR_HPP
#define BALLAST_TESTS_SUPPORT_TEMP_DIR_HPP

// A fresh temporary directory per use, unique across processes (ctest runs tests in parallel) and
// removed on scope exit.

#include <atomic>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace ballast::test
{
    class temp_dir
    {
    public:
        explicit temp_dir(const std::string& tag)
        {
            static std::atomic<int> counter{ 0 };
            m_path = std::filesystem::temp_directory_path() /
                     ("ballast_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
            std::filesystem::remove_all(m_path);
            std::filesystem::create_directories(m_path);
        }
        ~temp_dir()
        {
            std::error_code ec;
            std::filesystem::remove_all(m_path, ec);
        }
        temp_dir(const temp_dir&) = delete;
        temp_dir& operator=(const temp_dir&) = delete;

        const std::filesystem::path& path() const noexcept { return m_path; }
        std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

    private:
        std::filesystem::path m_path;
    };
} // namespace ballast::test

#endif
