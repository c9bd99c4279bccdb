package manifest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"
)

// The validator is built once: it caches struct metadata.
var (
	validatorOnce sync.Once
	fieldValidate *validator.Validate
	validatorErr  error
)

// stringRules maps a custom validator tag to the check that explains it.
var stringRules = map[string]func(string) string{
	"extendedresource": checkExtendedResourceName,
	"deviceid":         checkDeviceID,
	"envname":          checkEnvName,
	"annotationkey":    checkAnnotationKey,
	"permissions":      checkPermissions,
	"glob":             checkGlob,
}

const (
	minHealthInterval = 100 * time.Millisecond
	maxHealthInterval = time.Hour
)

func getValidator() (*validator.Validate, error) {
	validatorOnce.Do(func() {
		v := validator.New(validator.WithRequiredStructEnabled())
		// Report YAML names, not Go names, in namespaces.
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				return ""
			}
			return name
		})
		for tag, check := range stringRules {
			if err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool {
				return check(fl.Field().String()) == ""
			}); err != nil {
				validatorErr = fmt.Errorf("register validation %s: %w", tag, err)
				return
			}
		}
		if err := v.RegisterValidation("interval", func(fl validator.FieldLevel) bool {
			d, ok := fl.Field().Interface().(Duration)
			return ok && d.Duration >= minHealthInterval && d.Duration <= maxHealthInterval
		}); err != nil {
			validatorErr = fmt.Errorf("register validation interval: %w", err)
			return
		}
		fieldValidate = v
	})
	return fieldValidate, validatorErr
}

// validateFields applies the per-field rules (struct tags) and translates
// each failure into a FieldError at its YAML path.
func validateFields(spec *Spec, errs *ErrorList) {
	v, err := getValidator()
	if err != nil {
		errs.add("", "internal error: %v", err)
		return
	}
	err = v.Struct(spec)
	if err == nil {
		return
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		errs.add("", "validate: %v", err)
		return
	}
	for _, fe := range verrs {
		errs.add(yamlPath(fe.Namespace()), "%s", fieldMessage(fe))
	}
}

// yamlPath turns validator's "Spec.resources[0].mounts[1].hostPath" into
// "resources[0].mounts[1].hostPath".
func yamlPath(namespace string) string {
	_, rest, found := strings.Cut(namespace, ".")
	if !found {
		return namespace
	}
	return rest
}

func fieldMessage(fe validator.FieldError) string {
	if check, ok := stringRules[fe.Tag()]; ok {
		if why := check(fmt.Sprint(fe.Value())); why != "" {
			return why
		}
	}
	switch fe.Tag() {
	case "required":
		switch fe.Field() {
		case "resources":
			return "is required: list at least one resource"
		case "apiVersion":
			return "is required; write apiVersion: " + APIVersion
		case "kind":
			return "is required; write kind: " + Kind
		}
		if fe.Kind() == reflect.String && strings.Contains(fe.Namespace(), "[") && strings.HasSuffix(fe.Namespace(), "]") {
			return "must not be empty"
		}
		return "is required"
	case "min":
		switch fe.Kind() {
		case reflect.Slice, reflect.Map:
			return fmt.Sprintf("must have at least %s entries", fe.Param())
		}
		return fmt.Sprintf("must be at least %s (got %v)", fe.Param(), fe.Value())
	case "max":
		return fmt.Sprintf("must be at most %s (got %v)", fe.Param(), fe.Value())
	case "oneof":
		return fmt.Sprintf("%q is not allowed; use one of %s", fe.Value(), strings.ReplaceAll(fe.Param(), " ", ", "))
	case "interval":
		return fmt.Sprintf("%v is out of range; use between %v and %v", fe.Value(), minHealthInterval, maxHealthInterval)
	}
	return fmt.Sprintf("fails rule %q", fe.Tag())
}
