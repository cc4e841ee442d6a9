"""Local Kubernetes control plane (etcd, apiserver, scheduler, controller-manager, KWOK) for tests and the demo."""
