package host

import (
	"context"
	"fmt"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registryService is the pluginregistration API a plugin serves on its
// socket in plugins-registry mode, for the kubelet's plugin watcher.
type registryService struct {
	registerapi.UnimplementedRegistrationServer
	p    *Plugin
	sess *session
}

func (r *registryService) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.DevicePlugin,
		Name:              r.p.name,
		Endpoint:          r.p.socketPath,
		SupportedVersions: []string{pluginapi.Version},
	}, nil
}

func (r *registryService) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.PluginRegistered {
		r.sess.notify(nil)
	} else {
		r.sess.notify(fmt.Errorf("%s: %w", st.Error, errKubeletRefused))
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
