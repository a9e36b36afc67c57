import time, torch, sys
from ultralytics.nn.tasks import SegmentationModel
torch.set_num_threads(2)
m = SegmentationModel('yolov8n-seg.yaml', nc=80, verbose=False).eval()
fused = m.fuse(verbose=False) if len(sys.argv) > 1 else m
x = torch.rand(1, 3, 640, 640)
with torch.inference_mode():
    for _ in range(3): fused(x)
    ts = []
    for _ in range(15):
        t = time.perf_counter(); fused(x); ts.append(time.perf_counter() - t)
ts.sort()
print("torch threads", torch.get_num_threads(), "median ms %.1f min ms %.1f" % (ts[len(ts)//2]*1e3, ts[0]*1e3))
