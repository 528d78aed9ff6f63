#include "sim/request_replay.hpp"

#include <algorithm>

namespace bot4::sim {

std::vector<SimResponse> replay_requests(VenueSimulator& v, const BookEvent* b, size_t nb, const OrderEvent* o,
                                         size_t no, const TradeEvent* t, size_t nt, std::vector<TimedRequest> reqs,
                                         bool trades_first, QueueTrace* trace) {
  std::stable_sort(reqs.begin(), reqs.end(),
                   [](const TimedRequest& x, const TimedRequest& y) { return x.sent_local < y.sent_local; });
  for (const auto& r : reqs) v.send(r.request, r.sent_local);
  size_t ib = 0, io = 0, it = 0;
  while (ib < nb || io < no || it < nt) {
    const int64_t tb = ib < nb ? b[ib].ts_exchange : INT64_MAX;
    const int64_t to = io < no ? o[io].ts_exchange : INT64_MAX;
    const int64_t tt = it < nt ? t[it].ts_exchange : INT64_MAX;
    uint8_t stream;
    int64_t index;
    if (ib < nb && tb <= to && (trades_first ? tb < tt : tb <= tt)) {
      stream = 0, index = static_cast<int64_t>(ib);
      v.on_book(b[ib++]);
    } else if (io < no && (trades_first ? to < tt : to <= tt)) {
      stream = 1, index = static_cast<int64_t>(io);
      v.on_order(o[io++]);
    } else {
      stream = 2, index = static_cast<int64_t>(it);
      v.on_trade(t[it++]);
    }
    if (trace != nullptr) {
      trace->stream.push_back(stream);
      trace->index.push_back(index);
      trace->ahead.push_back(v.queue_ahead(trace->order_id));
    }
  }
  v.activate(INT64_MAX);
  std::vector<SimResponse> out;
  v.poll(INT64_MAX, out);
  return out;
}

}  // namespace bot4::sim
