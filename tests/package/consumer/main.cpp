// A downstream program: uses the umbrella header and checks a kernel against its scalar twin.
#include <cmath>
#include <cstdio>
#include <vector>

#include <ballast/ballast.hpp>

int main()
{
    const std::size_t n = 37;
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
    {
        x[i] = std::sin(0.3f * static_cast<float>(i));
    }
    const double simd = ballast::kernels::sum_squares(x.data(), n);
    const double ref = ballast::kernels::ref::sum_squares(x.data(), n);
    std::printf("ballast %s on %s: sum_squares simd=%.7g ref=%.7g\n", ballast::version_string,
                ballast::simd::arch_name(), simd, ref);
    return std::fabs(simd - ref) <= 1e-5 * ref ? 0 : 1;
}
