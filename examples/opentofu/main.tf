# kommons with OpenTofu (or Terraform) and the Helm provider: commons once per environment,
# then a module (orthanc) in a tenant namespace, both through the kommons post-renderer.
# NOT RUN by any test: see README.md beside this file for why and for what was tried.
#
#   export KUBE_CONFIG_PATH=~/.kube/config      # or set var.kubeconfig
#   tofu init && tofu apply
#
# Written for the hashicorp/helm provider 2.x (block syntax: `set {}`, `postrender {}`,
# `kubernetes {}`); 3.x turned those blocks into attributes (`set = [...]`,
# `postrender = {...}`, `kubernetes = {...}`): adapt them when you move to 3.x.
terraform {
  required_version = ">= 1.6.0"
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
  }
}

variable "kubeconfig" {
  description = "Path of the kubeconfig the Helm provider uses."
  type        = string
  default     = "~/.kube/config"
}

variable "postrender" {
  description = "The post-renderer wrapper: an executable that runs postrender with the placement policy."
  type        = string
  default     = "./postrender-db-app-split.sh"
}

provider "helm" {
  kubernetes {
    config_path = var.kubeconfig
  }
}

provider "kubernetes" {
  config_path = var.kubeconfig
}

# The tenant namespace must exist before commons: commons writes a Secret into it.
resource "kubernetes_namespace_v1" "imaging" {
  metadata {
    name = "imaging"
  }
}

resource "helm_release" "commons" {
  name             = "commons"
  namespace        = "commons"
  create_namespace = true
  chart            = "${path.module}/../../charts/commons"
  wait             = true
  wait_for_jobs    = true
  timeout          = 600

  set {
    name  = "tenants[0].namespace"
    value = "imaging"
  }
  set {
    name  = "tenants[0].buckets[0]"
    value = "dicom"
  }

  postrender {
    binary_path = var.postrender
  }

  depends_on = [kubernetes_namespace_v1.imaging]
}

resource "helm_release" "orthanc" {
  name              = "orthanc"
  namespace         = "imaging"
  chart             = "${path.module}/../../charts/orthanc"
  dependency_update = true # postgres-init, from the repository (file://)
  wait              = true
  wait_for_jobs     = true
  timeout           = 600

  set {
    name  = "replicaCount"
    value = "2"
  }
  set {
    name  = "storage.type"
    value = "s3"
  }

  postrender {
    binary_path = var.postrender
  }

  depends_on = [helm_release.commons]
}
