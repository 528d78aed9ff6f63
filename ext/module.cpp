#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace bot4::ext {
void bind_common(py::module_& m);
void bind_simd(py::module_& m);
void bind_book(py::module_& m);
void bind_sim(py::module_& m);
void bind_features(py::module_& m);
void bind_kernels(py::module_& m);
void bind_inference(py::module_& m);
void bind_ort(py::module_& m);
void bind_risk(py::module_& m);
void bind_orders(py::module_& m);
void bind_engine(py::module_& m);
void bind_ingest(py::module_& m);
void bind_portfolio(py::module_& m);
}  // namespace bot4::ext

PYBIND11_MODULE(_core, m) {
  m.doc() = "bot4 native core";
  m.attr("__version__") = BOT4_VERSION;
  m.attr("build_type") = BOT4_BUILD_TYPE;
  m.attr("compiler") = BOT4_COMPILER;
  bot4::ext::bind_common(m);
  bot4::ext::bind_simd(m);
  bot4::ext::bind_book(m);
  bot4::ext::bind_sim(m);
  py::module_ features = m.def_submodule("features", "feature engine and windowed kernels");
  bot4::ext::bind_features(features);
  bot4::ext::bind_kernels(features);
  py::module_ inference = m.def_submodule("inference", "model loading and inference (tree path, ONNX Runtime)");
  bot4::ext::bind_inference(inference);
  bot4::ext::bind_ort(m);
  py::module_ risk = m.def_submodule("risk", "position sizing, pre-trade checks and kill switch");
  bot4::ext::bind_risk(risk);
  py::module_ orders = m.def_submodule("orders", "order state machine, brackets, STP, idempotent submission");
  bot4::ext::bind_orders(orders);
  py::module_ engine = m.def_submodule("engine", "one-call backtest: trading engine and venue simulator");
  bot4::ext::bind_engine(engine);
  py::module_ ingest = m.def_submodule("ingest", "native venue decoders (streaming gzip + fixed-schema JSON)");
  bot4::ext::bind_ingest(ingest);
  py::module_ portfolio = m.def_submodule("portfolio", "the per-decision portfolio step (blend, select, size)");
  bot4::ext::bind_portfolio(portfolio);
}
