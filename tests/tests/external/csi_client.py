"""A CSI client outside the Rust stack, driving `testbed up` through its sockets.

It is built on gRPC's C core (Debian's python3-grpcio), the way csi-sanity and csc use
grpc-go: a second, independent gRPC implementation talking to the frontend's sockets. The
CSI stubs are generated at run time from the project's own csi.proto.

Usage: csi_client.py PROTO_DIR OUT_DIR NODE_SOCKET CONTROLLER_SOCKET KUBELET_DIR
Prints one line per step and exits 0 only if every step held.
"""

import os
import sys
import time

import grpc
from grpc_tools import protoc


def generate(proto_dir, out_dir):
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(["protoc", "-I" + proto_dir, "-I" + well_known,
                        "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
                        "csi.proto"])
    if code != 0:
        sys.exit("protoc failed on csi.proto")
    sys.path.insert(0, out_dir)


def main():
    proto_dir, out_dir, node_sock, ctrl_sock, kubelet = sys.argv[1:6]
    generate(proto_dir, out_dir)
    import csi_pb2 as pb
    import csi_pb2_grpc as rpc

    node_ch = grpc.insecure_channel("unix://" + node_sock)
    ctrl_ch = grpc.insecure_channel("unix://" + ctrl_sock)
    identity = rpc.IdentityStub(node_ch)
    controller = rpc.ControllerStub(ctrl_ch)
    node = rpc.NodeStub(node_ch)

    def step(name, value):
        print("ok   " + name + ": " + value, flush=True)

    info = identity.GetPluginInfo(pb.GetPluginInfoRequest(), timeout=10)
    assert info.name == "rds.csi.srvlab.io", info
    step("GetPluginInfo", info.name + " " + info.vendor_version)

    deadline = time.time() + 30
    while True:
        ready = identity.Probe(pb.ProbeRequest(), timeout=10).ready.value
        if ready:
            break
        if time.time() > deadline:
            sys.exit("Probe never became ready")
        time.sleep(0.2)
    step("Probe", "ready")

    caps = controller.ControllerGetCapabilities(
        pb.ControllerGetCapabilitiesRequest(), timeout=10)
    names = sorted(pb.ControllerServiceCapability.RPC.Type.Name(c.rpc.type)
                   for c in caps.capabilities)
    assert "CREATE_DELETE_VOLUME" in names and "PUBLISH_UNPUBLISH_VOLUME" in names, names
    step("ControllerGetCapabilities", ",".join(names))

    mode = pb.VolumeCapability.AccessMode(
        mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER)
    cap = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(fs_type="ext4"),
                              access_mode=mode)

    try:
        controller.CreateVolume(pb.CreateVolumeRequest(volume_capabilities=[cap]), timeout=10)
        sys.exit("CreateVolume without a name succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        step("CreateVolume without a name", e.code().name + ": " + e.details())

    vol = controller.CreateVolume(pb.CreateVolumeRequest(
        name="external-client-volume", volume_capabilities=[cap],
        capacity_range=pb.CapacityRange(required_bytes=64 << 20)), timeout=60).volume
    assert vol.volume_id.startswith("pvc-") and vol.capacity_bytes >= 64 << 20, vol
    step("CreateVolume", vol.volume_id + " " + str(vol.capacity_bytes))

    node_id = node.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=10).node_id
    step("NodeGetInfo", node_id)
    published = controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
        volume_id=vol.volume_id, node_id=node_id, volume_capability=cap,
        volume_context=vol.volume_context), timeout=60)
    step("ControllerPublishVolume", ",".join(sorted(published.publish_context)))

    staging = os.path.join(kubelet, "plugins/kubernetes.io/csi/rds.csi.srvlab.io/ext/globalmount")
    target = os.path.join(kubelet, "pods/ext-pod/volumes/kubernetes.io~csi/ext/mount")
    # As kubelet does: the staging directory exists, and so does the target's parent.
    os.makedirs(staging, exist_ok=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
        publish_context=published.publish_context, volume_context=vol.volume_context),
        timeout=120)
    step("NodeStageVolume", staging)
    node.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
        volume_capability=cap, publish_context=published.publish_context,
        volume_context=vol.volume_context), timeout=60)
    with open(os.path.join(target, "hello.txt"), "w") as f:
        f.write("written by an external CSI client\n")
    step("NodePublishVolume", target)

    stats = node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(
        volume_id=vol.volume_id, volume_path=target), timeout=10)
    total = [u.total for u in stats.usage if u.unit == pb.VolumeUsage.BYTES]
    assert total and total[0] > 0, stats
    assert not stats.volume_condition.abnormal, stats
    step("NodeGetVolumeStats", "total " + str(total[0]) + " bytes")

    node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(
        volume_id=vol.volume_id, target_path=target), timeout=60)
    node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(
        volume_id=vol.volume_id, staging_target_path=staging), timeout=60)
    controller.ControllerUnpublishVolume(pb.ControllerUnpublishVolumeRequest(
        volume_id=vol.volume_id, node_id=node_id), timeout=60)
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id), timeout=60)
    step("teardown", "unpublished, unstaged, detached, deleted")

    listed = controller.ListVolumes(pb.ListVolumesRequest(), timeout=10)
    assert all(e.volume.volume_id != vol.volume_id for e in listed.entries), listed
    step("ListVolumes", str(len(listed.entries)) + " volumes left")


if __name__ == "__main__":
    main()
