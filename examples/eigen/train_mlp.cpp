// A two-layer MLP written with Eigen, trained with rmsfuse's Adam (the C API, include/rmsfuse.h).
//
// The model, its forward pass and its hand-written backward pass are Eigen
// matrix expressions; every weight, gradient and optimizer-state matrix is an
// Eigen::MatrixXf, and one rmsfuse_adam_step_multi call per step updates all
// four parameter matrices in place through their .data() storage (Eigen's
// MatrixXf is a contiguous float array, column-major; the update is
// elementwise, so the layout does not matter as long as param, grad and state
// agree, which they do: same type, same shape).
//
// Problem: regression of y = sin(2 x.a) + 0.5 (x.b)^2 on 8 inputs, 1024
// points made here from a fixed seed; tanh hidden layer of 32; mean squared
// error; mini-batches of 128.  Prints the loss as it goes down and exits 1
// if the final loss is not below 10% of the initial one (the test,
// ctest -R example_eigen), 2 on a library error.
//
// Build (against an installed rmsfuse, or see tests/CMakeLists.txt):
//   cmake -S examples/eigen -B build/eigen -DCMAKE_PREFIX_PATH=<rmsfuse prefix>
//   cmake --build build/eigen && build/eigen/train_mlp [steps]
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <rmsfuse.h>

using Eigen::MatrixXf;
using Eigen::VectorXf;

namespace {

// One parameter matrix and what the optimizer keeps for it, all the same shape.
struct Slot {
    MatrixXf &param;
    MatrixXf grad, exp_avg, exp_avg_sq;
    explicit Slot(MatrixXf &p)
        : param(p), grad(MatrixXf::Zero(p.rows(), p.cols())), exp_avg(MatrixXf::Zero(p.rows(), p.cols())),
          exp_avg_sq(MatrixXf::Zero(p.rows(), p.cols())) {}
};

MatrixXf uniform(Eigen::Index rows, Eigen::Index cols, float bound, std::mt19937 &rng) {
    std::uniform_real_distribution<float> u(-bound, bound);
    MatrixXf m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
    return m;
}

}  // namespace

int main(int argc, char **argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 600;
    const int n = 1024, d = 8, h = 32, batch = 128;
    std::mt19937 rng(7);

    // Data: inputs in columns (d x n), targets a row (1 x n).
    MatrixXf x = uniform(d, n, 1.0f, rng);
    VectorXf a = uniform(d, 1, 1.0f, rng), b = uniform(d, 1, 1.0f, rng);
    MatrixXf y = ((2.0f * (a.transpose() * x)).array().sin() + 0.5f * (b.transpose() * x).array().square()).matrix();

    // Model: y_hat = W2 tanh(W1 x + b1) + b2, PyTorch's default initialization bounds.
    MatrixXf w1 = uniform(h, d, 1.0f / std::sqrt(float(d)), rng), b1 = uniform(h, 1, 1.0f / std::sqrt(float(d)), rng);
    MatrixXf w2 = uniform(1, h, 1.0f / std::sqrt(float(h)), rng), b2 = uniform(1, 1, 1.0f / std::sqrt(float(h)), rng);
    std::vector<Slot> slots;
    slots.reserve(4);  // Slot holds references; the matrices never move or resize below
    for (MatrixXf *p : {&w1, &b1, &w2, &b2}) slots.emplace_back(*p);
    Slot &gw1 = slots[0], &gb1 = slots[1], &gw2 = slots[2], &gb2 = slots[3];

    // The optimizer: one tensor list over every matrix, built once (the .data() pointers are stable).
    std::vector<rmsfuse_adam_tensor> tensors;
    for (Slot &s : slots)
        tensors.push_back({s.param.data(), s.grad.data(), s.exp_avg.data(), s.exp_avg_sq.data(), nullptr,
                           static_cast<size_t>(s.param.size())});
    rmsfuse_adam_config cfg = rmsfuse_adam_pytorch(1e-2);  // torch.optim.Adam(lr=1e-2) defaults

    auto full_loss = [&] {
        MatrixXf out = (w2 * ((w1 * x).colwise() + b1.col(0)).array().tanh().matrix()).array() + b2(0, 0);
        return (out - y).squaredNorm() / n;
    };
    const float loss0 = full_loss();
    std::printf("rmsfuse %s, Eigen %d.%d.%d: MLP %d-%d-1, %d points, Adam lr %g\n", rmsfuse_version(),
                EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, d, h, n, cfg.lr);
    std::printf("step %4d  loss %.5f\n", 0, loss0);

    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    MatrixXf xb(d, batch), yb(1, batch);
    for (int step = 1; step <= steps; ++step) {
        const int first = ((step - 1) * batch) % n;
        if (first == 0) std::shuffle(order.begin(), order.end(), rng);
        for (int j = 0; j < batch; ++j) {
            xb.col(j) = x.col(order[first + j]);
            yb(0, j) = y(0, order[first + j]);
        }
        // Forward.
        MatrixXf hid = ((w1 * xb).colwise() + b1.col(0)).array().tanh().matrix();  // h x batch
        MatrixXf out = (w2 * hid).array() + b2(0, 0);                            // 1 x batch
        // Backward of mean((out - y)^2).
        MatrixXf dout = (2.0f / batch) * (out - yb);                                // 1 x batch
        gw2.grad = dout * hid.transpose();
        gb2.grad(0, 0) = dout.sum();
        MatrixXf dpre = ((w2.transpose() * dout).array() * (1.0f - hid.array().square())).matrix();
        gw1.grad = dpre * xb.transpose();
        gb1.grad = dpre.rowwise().sum();
        // The update: one call for every matrix.
        cfg.step = step;
        const int status = rmsfuse_adam_step_multi(&cfg, tensors.data(), tensors.size());
        if (status != RMSFUSE_OK) {
            std::fprintf(stderr, "rmsfuse_adam_step_multi: %s\n", rmsfuse_strerror(status));
            return 2;
        }
        if (step % (steps / 10 > 0 ? steps / 10 : 1) == 0) std::printf("step %4d  loss %.5f\n", step, full_loss());
    }
    const float loss = full_loss();
    const bool ok = std::isfinite(loss) && loss < 0.1f * loss0;
    std::printf("loss %.5f -> %.5f (%.1f%% of the start): %s\n", loss0, loss, 100.0 * loss / loss0,
                ok ? "ok" : "FAILED: expected below 10%");
    return ok ? 0 : 1;
}
